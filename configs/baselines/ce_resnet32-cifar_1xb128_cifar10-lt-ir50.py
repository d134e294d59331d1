# Cross-entropy baseline (instance-balanced sampling), ResNet-32, CIFAR10-LT IR50,
# the papers' 200-epoch schedule.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt_ir50.py',
    '../_base_/schedules/cifar_lt_200e.py',
    '../_base_/default_runtime.py',
]
