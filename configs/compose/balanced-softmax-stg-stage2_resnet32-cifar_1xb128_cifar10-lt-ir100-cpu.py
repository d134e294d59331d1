# Balanced Softmax then STG, stage 2: STG's generator trained on the frozen features of the
# Balanced Softmax model (configs/baselines/balanced-softmax_*-cpu.py), median head/tail split (the
# split of STG's recommended chain). The stage-1 loss's class_counts buffer is reported as
# unexpected by this stage (STGGeneratorHead has no loss buffers); nothing else differs. Next:
# balanced-softmax-stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py.
_base_ = ['../stg/stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-median.py']

model = dict(predecessor='Balanced Softmax '
             '(configs/baselines/balanced-softmax_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py)')
load_from = 'work_dirs/balanced-softmax_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
