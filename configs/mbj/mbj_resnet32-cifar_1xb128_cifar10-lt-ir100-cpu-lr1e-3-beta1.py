# MBJ-F at lr 1e-3 with beta 1 (issue 18, screen 2): with beta 1.5 a class's share of the
# global memory grows as N^(1 - beta) (CIFAR-10-LT IR100: ~25% rarest class, ~2% largest);
# beta 1 makes the memory class-balanced in expectation.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-3.py']
model = dict(head=dict(memory=dict(beta=1.0)))
