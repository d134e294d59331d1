# IEM + RSA, ResNet-32, open split of CIFAR-10-LT IR100 (classes 0-7 known, 8-9 unknown; see
# ../_base_/datasets/cifar10_lt_ir100_open8.py), the paper's training and inference reading,
# 30-epoch CPU schedule. Open-set confidence: the maximum of the final scores (the same rule
# as CE's softmax maximum, so the comparison is fair); the memory confidence is the
# -open8-knn-memconf variant.
_base_ = [
    './_base_/iem_resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt_ir100_open8.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    './_base_/iem_runtime.py',
]
model = dict(head=dict(num_classes=8))
optim_wrapper = dict(
    optimizer=dict(type='HybridSGDAdam'),
    paramwise_cfg=dict(custom_keys={
        'head.global_memory': dict(adam=True, lr_mult=1e-4, decay_mult=0.0),
        'head.local_memory': dict(adam=True, lr_mult=1e-4, decay_mult=0.0),
    }))
