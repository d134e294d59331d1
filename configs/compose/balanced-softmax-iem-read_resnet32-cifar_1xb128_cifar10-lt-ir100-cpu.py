# Balanced Softmax classifier kept + IEM memory read on the 30-epoch CPU Balanced Softmax model:
# the paper-schedule config (the same memory-fill stage) with the CPU stage-1 checkpoint. Run
# `configs/baselines/balanced-softmax_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py` first.
_base_ = ['./balanced-softmax-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100.py']
load_from = 'work_dirs/balanced-softmax_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
