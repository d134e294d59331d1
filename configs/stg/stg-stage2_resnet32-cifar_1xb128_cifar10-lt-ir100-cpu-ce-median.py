# STG stage 2 on the plain CE checkpoint with the median head/tail split (issue 19). On the
# 30-epoch CPU schedule the paper's mixup stage 1 under-fits (CIFAR-10-LT seed 0: 47.67 vs
# CE 62.70; the package cRT on it 67.61 vs 72.20 on CE, val 70.1 vs 75.5), so validation
# picks CE as stage 1. Next: stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ce-median-sgd.py.
_base_ = ['./stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-median.py']

model = dict(predecessor='CE (configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py)')
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
