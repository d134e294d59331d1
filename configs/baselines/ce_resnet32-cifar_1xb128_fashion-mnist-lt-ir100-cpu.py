# Cross-entropy baseline, ResNet-32 (1 input channel), FashionMNIST-LT IR100, CPU schedule.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/fashion_mnist_lt_ir100.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]
model = dict(backbone=dict(in_channels=1))
