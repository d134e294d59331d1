# STG stage 2 on the mixup fine-tuned stage 1 (stg-stage1_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-mixft10.py, issue 19 screen).
_base_ = ['./stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(predecessor='STG stage 1 (stg-stage1_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-mixft10.py)')
load_from = 'work_dirs/stg-stage1_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-mixft10/epoch_10.pth'
