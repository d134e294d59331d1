# Cross-entropy baseline on DigitsLT (bundled with scikit-learn): the README's smoke run.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/digits_lt.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]
model = dict(backbone=dict(in_channels=1))
optim_wrapper = dict(optimizer=dict(lr=0.05))
train_cfg = dict(val_interval=10)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=10))
