# MBJ + RIDE (4 experts), ResNet-32 (1 input channel), FashionMNIST-LT IR100, CPU schedule:
# 10 epochs with one feature memory per expert after the 30-epoch RIDE run.
_base_ = [
    '../_base_/models/ride_resnet32_cifar.py',
    '../_base_/datasets/fashion_mnist_lt_ir100.py',
    '../_base_/schedules/finetune_10e_cpu.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(in_channels=1),
    head=dict(
        num_classes=10,
        mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=1.5, size=5 * 10, seed=0),
                 eta=15.0, sharing='per_expert'),
    ))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=0),
    dict(type='MBJMemoryStatsHook', interval=50),
]
load_from = 'work_dirs/ride_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu/epoch_30.pth'
