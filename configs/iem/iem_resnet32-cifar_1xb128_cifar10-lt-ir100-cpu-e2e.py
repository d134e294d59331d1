# IEM + RSA, ResNet-32, CIFAR-10-LT IR100, CPU schedule --
# open choice: the memory MSE loss also reaches the neck and backbone ('end-to-end').
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(memory_loss_to_backbone=True))
