# Issue 18 IEM screen: memory lr 1e-3 constant, writes stop after the warm-up (~1 epoch), so
# Eq. 14-16 reshape a fixed set of slots instead of new writes resetting them.
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ft10-memlr1e-3.py']
model = dict(head=dict(write_after_warmup=False))
