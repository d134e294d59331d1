# cRT (10 epochs, class-balanced) after the 15-epoch AFA + LBLS screen afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15.py.
_base_ = ['./afa-crt_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

load_from = 'work_dirs/afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15/epoch_15.pth'
