# LDAM-DRW then STG, stage 2: STG's generator (Sec. 3.3) trained on the frozen features of the
# LDAM-DRW model of configs/baselines/ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py.
# The STG stage-2 config as it is; only the stage-1 checkpoint differs. LDAM's classifier is
# cosine (head.weight), not the linear head.fc this stage keeps: mmengine reports head.weight
# as unexpected and head.fc.* as missing, and the validation of this stage scores a fresh
# linear layer (ignore it; the generator does not use the classifier). Stage 3 re-initialises
# the classifier anyway.
# Next: ldam-drw-stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py.
_base_ = ['../stg/stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(predecessor='LDAM-DRW '
             '(configs/baselines/ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py)')
load_from = 'work_dirs/ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
