# cRT after afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15-bnfrozen.py (the neck built as in that run).
_base_ = ['./afa-crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(neck=dict(gen_bn='frozen_stats'))
load_from = 'work_dirs/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15-bnfrozen/epoch_15.pth'
