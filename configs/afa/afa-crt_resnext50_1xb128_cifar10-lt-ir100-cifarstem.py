# cRT after afa_resnext50_1xb128_cifar10-lt-ir100-cifarstem.py (the same CIFAR stem).
_base_ = ['./afa-crt_resnext50_1xb128_cifar10-lt-ir100.py']

model = dict(backbone=dict(cifar_stem=True))
load_from = 'work_dirs/afa_resnext50_1xb128_cifar10-lt-ir100-cifarstem/epoch_90.pth'
