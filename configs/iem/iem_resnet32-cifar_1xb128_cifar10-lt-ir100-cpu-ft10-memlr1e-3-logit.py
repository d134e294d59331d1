# Issue 18 IEM screen: memory lr 1e-3 constant, warm-up values are the logit of the true class
# (the paper's text reading) instead of its softmax probability.
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ft10-memlr1e-3.py']
model = dict(head=dict(warmup_value='logit'))
