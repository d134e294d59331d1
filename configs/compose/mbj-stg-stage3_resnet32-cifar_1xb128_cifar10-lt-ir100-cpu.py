# MBJ then STG, stage 3: cRT classifier + STG's feature generator (ComposedClsHead) on the
# frozen MBJ representation, the generator from mbj-stg-stage2_*-cpu.py (chain: CE -> MBJ ->
# STG stage 2 -> this). Everything else as crt-stg-stage3_*-cpu.py.
_base_ = ['./crt-stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(predecessor='STG stage 2 on MBJ '
             '(configs/compose/mbj-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py)')
load_from = 'work_dirs/mbj-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_10.pth'
