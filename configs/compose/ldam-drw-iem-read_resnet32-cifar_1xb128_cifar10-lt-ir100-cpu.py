# LDAM-DRW classifier kept + IEM memory read on the 30-epoch CPU LDAM-DRW model: the paper-schedule
# config (`ldam-drw-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100.py`, the same memory-fill
# stage) with the CPU stage-1 checkpoint. Run
# `configs/baselines/ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py` first.
_base_ = ['./ldam-drw-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100.py']
load_from = 'work_dirs/ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
