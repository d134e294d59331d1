# AFA + LBLS screen (issue 19), CIFAR-10-LT IR100: softmax of Eq. 3 over the H*W positions of each channel
# (model.neck.mask_axis='spatial'); otherwise afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15.py.
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15.py']

model = dict(neck=dict(mask_axis='spatial'))
