# Cross-entropy on the open split of DigitsLT (digits 0-7 known, 8-9 unknown): the smoke run
# of the open-set path (threshold chosen on val, F-measure on test). Minutes on one CPU core.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/digits_lt_open8.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]
model = dict(backbone=dict(in_channels=1), head=dict(num_classes=8))
optim_wrapper = dict(optimizer=dict(lr=0.05))
train_cfg = dict(val_interval=10)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=10))
