# Ablation MBJ-W (Fig. 4a): memory of classifier-weight snapshots instead of features.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(variant='W'))
