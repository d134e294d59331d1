# MBJ-F, the paper's memory, lr 0.01 for the classifier and 0.001 for the backbone
# (lr_mult 0.1; issue 18, screen 1). Control: ce-ft_..._cifar10-lt-ir100-cpu-bbmult0.1.py.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
