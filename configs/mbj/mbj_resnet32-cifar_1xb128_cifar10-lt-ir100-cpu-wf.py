# Ablation MBJ-WF (Fig. 4a): feature and weight memories, eta on each memory term.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(variant='WF'))
