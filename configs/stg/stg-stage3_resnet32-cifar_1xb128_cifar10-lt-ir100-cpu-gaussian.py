# Table 7: Gaussian noise (std 1.0) on tail features instead of STG.
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(head=dict(augment='gaussian', noise_std=1.0))
