# AFA + STG, stage 3, CPU chain (afa_*-cpu.py -> afa-stg-stage2_*-cpu.py -> this): the stage of
# afa-stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100.py with lambda 0.5 (as
# crt-stg-stage3_*-cpu.py) on the CPU stage-2 checkpoint.
_base_ = ['./afa-stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100.py']
model = dict(head=dict(generator=dict(lam=0.5)))
load_from = 'work_dirs/afa-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_10.pth'
