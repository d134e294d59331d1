# MBJ then STG, stage 2: STG's generator (Sec. 3.3) trained on the frozen features of the MBJ
# model of configs/mbj/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py (CE 30 epochs + 10
# epochs MBJ fine-tuning). The STG stage-2 config as it is; only the stage-1 checkpoint
# differs. The MBJ head's memory (head.memory.*) is not part of this model: mmengine reports
# those keys as unexpected and skips them; the linear classifier (head.fc.*) loads and is what
# validation reports during this stage.
# Next: mbj-stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py.
_base_ = ['../stg/stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(predecessor='MBJ (configs/mbj/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py)')
load_from = 'work_dirs/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_10.pth'
