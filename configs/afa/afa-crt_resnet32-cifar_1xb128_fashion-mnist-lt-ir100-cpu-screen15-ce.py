# cRT after the CE screen control afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15-ce.py (CE + cRT).
_base_ = ['./afa-crt_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

model = dict(neck=dict(attention_addition=False))
load_from = 'work_dirs/afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15-ce/epoch_15.pth'
