# MBJ-F at lr 1e-3 with per-class rings (issue 18, screen 2): each class owns 5 slots (the
# paper's 5C in all), so the memory is exactly class-balanced once filled; Eq. 1 sets how
# often each ring is refreshed.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-3.py']
model = dict(head=dict(memory=dict(size=None, per_class_slots=5)))
