# The cRT arm of stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-sgd.py (no augmentation): equals the package's SGD cRT.
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-sgd.py']

model = dict(head=dict(augment='none'))
