# MBJ-F at lr 1e-3, L_memory summed over the memory and divided by its capacity (issue 18,
# screen 2): a partly filled memory weighs proportionally less.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-3.py']
model = dict(head=dict(memory_reduction='capacity'))
