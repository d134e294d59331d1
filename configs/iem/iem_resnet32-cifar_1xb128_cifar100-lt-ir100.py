# IEM + RSA, ResNet-32, CIFAR-100-LT IR100, the 200-epoch LDAM schedule (paper-style).
_base_ = [
    './_base_/iem_resnet32_cifar.py',
    '../_base_/datasets/cifar100_lt_ir100.py',
    '../_base_/schedules/cifar_lt_200e.py',
    './_base_/iem_runtime.py',
]
model = dict(head=dict(num_classes=100))

# Backbone, neck and classifier: the schedule's SGD. Memory keys and values: Adam at
# lr_mult x the base lr (the paper: Adam, lr 1e-5), no weight decay. HybridSGDAdam is one
# optimizer whose parameter groups pick their rule (MMPretrain's train_step drives one
# OptimWrapper); mmengine's custom_keys put the memories in the Adam groups. Parameter
# schedulers scale the memory lr with the rest.
optim_wrapper = dict(
    optimizer=dict(type='HybridSGDAdam'),
    paramwise_cfg=dict(custom_keys={
        'head.global_memory': dict(adam=True, lr_mult=1e-4, decay_mult=0.0),
        'head.local_memory': dict(adam=True, lr_mult=1e-4, decay_mult=0.0),
    }))
# 1e-4 x lr 0.1 = the paper's memory lr 1e-5
