# plain cRT inside the STG pipeline (same stage-2 checkpoint).
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(head=dict(augment='none'))
