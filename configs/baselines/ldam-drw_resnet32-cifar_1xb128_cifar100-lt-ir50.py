# LDAM-DRW (Cao et al. 2019), ResNet-32, CIFAR100-LT IR50, the 200-epoch schedule, DRW from epoch
# 160 (LDAM-DRW's). Cosine classifier (s = 30), LDAM margins C / n_c^(1/4) with the largest 0.5,
# then class-balanced weights by the effective number (beta 0.9999), normalised to sum C, from the
# DRW epoch.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar100_lt_ir50.py',
    '../_base_/schedules/cifar_lt_200e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    head=dict(
        type='NormedLinearClsHead',
        num_classes=100,
        in_channels='auto',
        scale=30.0,
        loss=dict(_delete_=True, type='LDAMLoss', max_margin=0.5, drw_beta=0.9999),
    ))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=160),
]
