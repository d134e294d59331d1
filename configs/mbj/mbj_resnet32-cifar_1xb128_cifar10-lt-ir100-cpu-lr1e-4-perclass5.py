# MBJ-F at lr 1e-4 with per-class rings (issue 18, memory screen at the lr that beat its
# control): each class owns 5 slots (the paper's 5C in all), an exactly class-balanced memory.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-4.py']
model = dict(head=dict(memory=dict(size=None, per_class_slots=5)))
