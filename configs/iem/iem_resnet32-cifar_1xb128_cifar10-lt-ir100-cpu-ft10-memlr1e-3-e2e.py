# Issue 18 IEM screen: memory lr 1e-3 constant, the memory MSE loss also reaches the neck and
# backbone (the paper: "optimized end-to-end").
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ft10-memlr1e-3.py']
model = dict(head=dict(memory_loss_to_backbone=True))
