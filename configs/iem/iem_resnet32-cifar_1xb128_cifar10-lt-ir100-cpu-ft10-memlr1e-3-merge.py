# Issue 18 IEM screen: memory lr 1e-3 constant, Eq. 4 merge radius: a written key within 5% of
# the nearest stored key's norm (same class) updates that slot's value instead of taking a
# new slot (without it, augmented features never "already exist").
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ft10-memlr1e-3.py']
model = dict(head=dict(merge_radius=0.05, merge_relative=True))
