# AFA + LBLS screen (issue 19), CIFAR-10-LT IR100: Q/K/V by 1x1 convolutions over channels instead of linear maps over H*W
# (model.neck.qkv='conv1x1'); otherwise afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15.py.
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15.py']

model = dict(neck=dict(qkv='conv1x1'))
