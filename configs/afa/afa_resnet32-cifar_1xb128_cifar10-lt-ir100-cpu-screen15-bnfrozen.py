# AFA + LBLS screen (issue 19), CIFAR-10-LT IR100: generated features in a second pass through the last stage that leaves its BN running statistics alone
# (model.neck.gen_bn='frozen_stats'); otherwise afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15.py.
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15.py']

model = dict(neck=dict(gen_bn='frozen_stats'))
