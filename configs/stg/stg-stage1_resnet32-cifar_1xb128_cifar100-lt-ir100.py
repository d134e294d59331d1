# STG stage 1 (Sec. 3.2): ResNet-32 + linear classifier on CIFAR-100-LT IR100, instance-balanced
# sampling and mixup (alpha 1.0), the LDAM 200-epoch schedule.
# Next: stg-stage2_resnet32-cifar_1xb128_cifar100-lt-ir100.py (loads this run's last checkpoint).
_base_ = ['../baselines/ce_resnet32-cifar_1xb128_cifar100-lt-ir100.py']

model = dict(train_cfg=dict(augments=dict(type='Mixup', alpha=1.0)))
