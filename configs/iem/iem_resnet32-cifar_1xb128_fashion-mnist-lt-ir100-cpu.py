# IEM + RSA, ResNet-32 (1 input channel), FashionMNIST-LT IR100, the 30-epoch CPU schedule.
# 28x28 inputs give a 7x7 final map: 169 regions up to 2x2, 16 kept for the local memory.
_base_ = [
    './_base_/iem_resnet32_cifar.py',
    '../_base_/datasets/fashion_mnist_lt_ir100.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    './_base_/iem_runtime.py',
]
model = dict(backbone=dict(in_channels=1), head=dict(warmup_iters=116))  # ~1 epoch

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
