# AFA + LBLS screen (issue 19), CIFAR-10-LT IR100: element-wise sigmoid mask: does not shrink as 1/D
# (model.neck.mask='sigmoid'); otherwise afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15.py.
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15.py']

model = dict(neck=dict(mask='sigmoid'))
