# cRT on the open split of CIFAR-10-LT IR100: the CE open-split model's backbone frozen, the
# classifier re-trained 10 epochs with class-balanced sampling (as the closed-set cRT config).
# Open-set confidence: the softmax maximum, as for CE.
_base_ = ['./ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-open8.py']

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)

model = dict(type='DecoupledClassifier', reinit_head=True)
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-open8/epoch_30.pth'
