# Ablation FR (Fig. 5): Eq. 1 re-balancing of the current batch's features only, no history
# (the memory is emptied before each write).
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(variant='FR'))
