# LDAM-DRW then STG, stage 3: cRT classifier + STG's feature generator (ComposedClsHead) on the
# frozen LDAM-DRW representation, the generator from ldam-drw-stg-stage2_*-cpu.py (chain:
# LDAM-DRW -> STG stage 2 -> this). Everything else as crt-stg-stage3_*-cpu.py.
_base_ = ['./crt-stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(predecessor='STG stage 2 on LDAM-DRW (configs/compose/'
             'ldam-drw-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py)')
load_from = ('work_dirs/ldam-drw-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/'
             'epoch_10.pth')
