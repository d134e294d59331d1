# Table 7: dropout (p 0.3) on tail features instead of STG.
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(head=dict(augment='dropout', dropout_p=0.3))
