# cRT after MBJ at lr 1e-3 (issue 18, screen 3: is a collapse confined to the classifier?):
# backbone frozen, classifier re-initialised, class-balanced sampling, lr 0.1 cosine, 10
# epochs, from the checkpoint of mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-3.py
# (the same steps as the benchmark arm `mbj-lr1e-3+crt` of tools/benchmark/run.py).
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(type='DecoupledClassifier', reinit_head=True, head=dict(memory_enabled=False))
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True,
                        begin=0, end=10, convert_to_iter_based=True)]
custom_hooks = [dict(type='ClassCountsHook')]
load_from = 'work_dirs/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-3/epoch_10.pth'
