# MBJ-F, the paper's memory, trainable backbone, memory phase at lr 1e-4 (issue 18, screen 1).
# Control at the same lr: ce-ft_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-4.py.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
optim_wrapper = dict(optimizer=dict(lr=0.0001))
