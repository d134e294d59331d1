# cRT after afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15-nogen.py.
_base_ = ['./afa-crt_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

load_from = 'work_dirs/afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15-nogen/epoch_15.pth'
