# Cross-entropy baseline (instance-balanced sampling), ResNet-32, CIFAR10-LT IR10,
# the 30-epoch CPU schedule.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt_ir10.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]
