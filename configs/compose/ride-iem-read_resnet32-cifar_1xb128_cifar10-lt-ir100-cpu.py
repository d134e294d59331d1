# RIDE kept whole + IEM memory read on the 30-epoch CPU RIDE model: the paper-schedule config
# (`ride-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100.py`, the same memory-fill stage) with
# the CPU stage-1 checkpoint. Run `configs/ride/ride_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py`
# first.
_base_ = ['./ride-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100.py']
load_from = 'work_dirs/ride_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
