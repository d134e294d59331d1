# Issue 18 IEM screen, cause 1 as a whole ("values that can learn"): memory lr 1e-3
# constant, writes stopped after warm-up, logit warm-up values.
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ft10-memlr1e-3.py']
model = dict(head=dict(write_after_warmup=False, warmup_value='logit'))
