# STG stage 1 (Sec. 3.2): ResNet-32 + linear classifier on FashionMNIST-LT IR100 (CPU schedule), instance-balanced
# sampling and mixup (alpha 1.0), the 30-epoch CPU schedule.
# Next: stg-stage2_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py (loads this run's last checkpoint).
_base_ = ['../baselines/ce_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

model = dict(train_cfg=dict(augments=dict(type='Mixup', alpha=1.0)))
