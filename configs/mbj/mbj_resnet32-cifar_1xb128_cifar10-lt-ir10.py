# MBJ-F (Liu et al. 2021, Algorithm 1), ResNet-32, CIFAR-10-LT IR10, paper schedule (after the
# 200-epoch CE run).
# Phase 2 of the two-phase recipe: load the converged CE model of
# `configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir10.py` and fine-tune with the feature
# memory at a small LR
# (lr 0.01, 30 epochs: the paper only says "a small value"; our choice).
# Memory: 5 * C slots, admission (N_min / N_c)^1.5 (Eq. 1 normalised by its max), eta = 15.
# Switches for the calibration study: memory.beta, memory.size / memory.per_class_slots,
# memory.admission ('raw' = P_i as printed), eta, classifier ('cosine'), variant
# ('W', 'WF', 'FR', 'FR+RJ'), model.type='DecoupledClassifier' + reinit_head=False
# (frozen backbone during the memory phase); cRT after MBJ: a crt config with
# load_from pointing at this run's checkpoint.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt_ir10.py',
    '../_base_/default_runtime.py',
]

model = dict(
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
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir10/epoch_200.pth'

# Paper schedule: 30 epochs of fine-tuning at a constant lr 0.01 (batch 128).
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=2e-4))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=30)]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
