# cRT (Kang et al. 2019): the stage-1 CE model's backbone frozen (no gradients, BatchNorm in
# eval mode), classifier re-initialised and re-trained for 10 epochs with class-balanced
# sampling. Run `ce_resnet32-cifar_1xb128_cifar10-lt-ir10-cpu.py` first (or point load_from at its checkpoint).
_base_ = ['./ce_resnet32-cifar_1xb128_cifar10-lt-ir10-cpu.py']

# Stage-2 schedule: 10 epochs, SGD lr 0.1 (batch 128) with cosine decay, momentum 0.9,
# weight decay 2e-4; only the classifier has trainable parameters.
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)

model = dict(type='DecoupledClassifier', reinit_head=True)
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir10-cpu/epoch_30.pth'
