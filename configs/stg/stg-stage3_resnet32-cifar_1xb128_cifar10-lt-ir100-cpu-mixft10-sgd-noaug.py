# cRT arm of stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-mixft10-sgd.py (SGD, no augmentation).
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-mixft10-sgd.py']

model = dict(head=dict(augment='none'))
