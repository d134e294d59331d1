# MBJ-F at lr 1e-4, L_memory summed over the memory and divided by its capacity (issue 18,
# memory screen at the lr that beat its control).
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-4.py']
model = dict(head=dict(memory_reduction='capacity'))
