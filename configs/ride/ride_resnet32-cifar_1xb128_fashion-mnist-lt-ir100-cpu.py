# RIDE (4 experts), ResNet-32 (1 input channel), FashionMNIST-LT IR100, CPU schedule,
# re-weighting from epoch 24.
_base_ = [
    '../_base_/models/ride_resnet32_cifar.py',
    '../_base_/datasets/fashion_mnist_lt_ir100.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]
model = dict(backbone=dict(in_channels=1), head=dict(num_classes=10))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=24),
]
