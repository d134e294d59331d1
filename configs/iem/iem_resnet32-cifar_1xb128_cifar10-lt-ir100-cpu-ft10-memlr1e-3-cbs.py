# Issue 18 IEM screen: memory lr 1e-3 constant, class-balanced sampling in the memory stage
# (IEM's ImageNet-LT schedule is OLTR's memory stage, which samples class-aware).
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ft10-memlr1e-3.py']
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
