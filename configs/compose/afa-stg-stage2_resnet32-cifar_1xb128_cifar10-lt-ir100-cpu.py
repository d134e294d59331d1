# AFA + STG, stage 2, on the 30-epoch CPU AFA + LBLS model
# (configs/afa/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py): the stage of
# afa-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100.py (which sets its own schedule and
# hooks, so the AFA schedule it sits on does not matter) on the CPU checkpoint.
# Next: afa-stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py.
_base_ = ['./afa-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100.py']
load_from = 'work_dirs/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
