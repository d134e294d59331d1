# MBJ + RIDE (4 experts), ResNet-32, CIFAR10-LT IR10: MBJ's two-phase recipe on RIDE. Load the
# converged `ride_resnet32-cifar_1xb128_cifar10-lt-ir10.py` model and fine-tune 30 epochs at a small
# lr with MBJ's feature memory: one RebalancedFIFOMemory per expert (5 * C slots, beta 1.5, eta 15),
# read by that expert's classifier with its LDAM-DRW loss (re-weighting stays on, as at the end of
# RIDE training). `mbj.sharing='shared'`: one memory of concatenated expert features.
_base_ = [
    '../_base_/models/ride_resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt_ir10.py',
    '../_base_/default_runtime.py',
]
model = dict(
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
load_from = 'work_dirs/ride_resnet32-cifar_1xb128_cifar10-lt-ir10/epoch_200.pth'

# Paper schedule: 30 epochs of fine-tuning at a constant lr 0.01 (batch 128), as the MBJ configs.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=30)]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
