# AFA + LBLS screen (issue 19), FashionMNIST-LT IR100: Eq. 3's channel softmax times D: mean 1, not 1/D
# (model.neck.mask='softmax_times_n'); otherwise afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15.py.
_base_ = ['./afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15.py']

model = dict(neck=dict(mask='softmax_times_n'))
