# MBJ-F (Liu et al. 2021, Algorithm 1), ResNet-32, FashionMNIST-LT IR100, CPU schedule (10 epochs
# after the 30-epoch CE run).
# Phase 2 of the two-phase recipe: load the converged CE model of
# `configs/baselines/ce_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py` and fine-tune with
# the feature memory at a small LR
# (lr 0.01, 10 epochs: the paper only says "a small value"; our choice).
# Memory: 5 * C slots, admission (N_min / N_c)^1.5 (Eq. 1 normalised by its max), eta = 15.
# Switches for the calibration study: memory.beta, memory.size / memory.per_class_slots,
# memory.admission ('raw' = P_i as printed), eta, classifier ('cosine'), variant
# ('W', 'WF', 'FR', 'FR+RJ'), model.type='DecoupledClassifier' + reinit_head=False
# (frozen backbone during the memory phase); cRT after MBJ: a crt config with
# load_from pointing at this run's checkpoint.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/fashion_mnist_lt_ir100.py',
    '../_base_/schedules/finetune_10e_cpu.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(in_channels=1),  # grey images
    head=dict(
        type='MBJClsHead',
        num_classes=10,
        in_channels='auto',
        classifier='linear',
        memory=dict(type='RebalancedFIFOMemory', beta=1.5, admission='max_normalized',
                    size=5 * 10, seed=0),
        eta=15.0,
        variant='F',
    ))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='MBJMemoryStatsHook', interval=50),
]
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu/epoch_30.pth'
