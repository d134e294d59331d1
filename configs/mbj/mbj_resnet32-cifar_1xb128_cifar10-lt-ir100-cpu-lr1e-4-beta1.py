# MBJ-F at lr 1e-4 with beta 1 (issue 18, memory screen at the lr that beat its control):
# beta 1 makes the memory class-balanced in expectation (beta 1.5 over-weights the tail).
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-4.py']
model = dict(head=dict(memory=dict(beta=1.0)))
