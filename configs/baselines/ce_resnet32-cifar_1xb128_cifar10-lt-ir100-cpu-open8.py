# Cross-entropy baseline, ResNet-32, open split of CIFAR-10-LT IR100 (classes 0-7 known,
# 8-9 unknown; see ../_base_/datasets/cifar10_lt_ir100_open8.py), 30-epoch CPU schedule.
# Open-set confidence: the softmax maximum (OpenSetShotAccuracy's default).
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt_ir100_open8.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=8))
