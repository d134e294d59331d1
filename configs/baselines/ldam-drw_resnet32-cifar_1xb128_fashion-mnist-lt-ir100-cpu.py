# LDAM-DRW, ResNet-32 (1 input channel), FashionMNIST-LT IR100, CPU schedule, DRW from epoch 24.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/fashion_mnist_lt_ir100.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(in_channels=1),
    head=dict(
        type='NormedLinearClsHead',
        num_classes=10,
        in_channels='auto',
        scale=30.0,
        loss=dict(_delete_=True, type='LDAMLoss', max_margin=0.5, drw_beta=0.9999),
    ))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=24),
]
