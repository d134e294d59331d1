# IEM + RSA, ResNet-32, CIFAR-10-LT IR100, CPU schedule -- Table 5 'w/o local memory'.
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(use_local_memory=False))
