# Cross-entropy baseline (instance-balanced sampling), ResNet-32, CIFAR10-LT IR100,
# the papers' 200-epoch schedule.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt_ir100.py',
    '../_base_/schedules/cifar_lt_200e.py',
    '../_base_/default_runtime.py',
]
