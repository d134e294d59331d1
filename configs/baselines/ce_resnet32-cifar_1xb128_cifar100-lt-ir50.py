# Cross-entropy baseline (instance-balanced sampling), ResNet-32, CIFAR100-LT IR50,
# the papers' 200-epoch schedule.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar100_lt_ir50.py',
    '../_base_/schedules/cifar_lt_200e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=100))
