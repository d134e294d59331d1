# cRT after afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15-softmaxn.py (the neck built as in that run).
_base_ = ['./afa-crt_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

model = dict(neck=dict(mask='softmax_times_n'))
load_from = 'work_dirs/afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15-softmaxn/epoch_15.pth'
