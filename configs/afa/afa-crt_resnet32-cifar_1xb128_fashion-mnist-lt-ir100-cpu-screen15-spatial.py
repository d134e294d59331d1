# cRT after afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15-spatial.py (the neck built as in that run).
_base_ = ['./afa-crt_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

model = dict(neck=dict(mask_axis='spatial'))
load_from = 'work_dirs/afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15-spatial/epoch_15.pth'
