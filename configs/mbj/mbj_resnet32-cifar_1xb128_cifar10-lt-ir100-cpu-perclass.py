# MBJ-F with 5 slots per class (class c refreshes its own ring with probability from Eq. 1)
# instead of one global queue of 5 * C.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(memory=dict(size=None, per_class_slots=5)))
