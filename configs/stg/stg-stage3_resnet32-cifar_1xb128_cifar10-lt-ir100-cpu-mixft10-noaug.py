# cRT control of the mixup fine-tuned chain: stage 3 without augmentation (same pipeline).
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-mixft10.py']

model = dict(head=dict(augment='none'))
