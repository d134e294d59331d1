# MBJ-F, the paper's memory (5C, beta 1.5, eta 15), trainable backbone, memory phase at lr 1e-3
# instead of 0.01 (issue 18, screen 1: at 0.01 the instance-balanced batch loss lets the
# backbone re-learn the head bias and ages the stored features). Control at the same lr:
# ce-ft_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-3.py.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
optim_wrapper = dict(optimizer=dict(lr=0.001))
