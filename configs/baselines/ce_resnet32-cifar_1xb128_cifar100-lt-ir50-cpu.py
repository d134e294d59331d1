# Cross-entropy baseline (instance-balanced sampling), ResNet-32, CIFAR100-LT IR50,
# the 30-epoch CPU schedule.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar100_lt_ir50.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=100))
