# IEM + RSA, ResNet-32, CIFAR-10-LT IR100, CPU schedule -- Table 5 'w/o RSA': RSA replaced
# by average pooling (the classifier reads GAP, regions are plain region means). The local
# memory keeps the 16 regions whose means are most similar to GAP (parameter-free ranking);
# local_regions=None keeps all 225 (reads then cost ~14x more).
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(neck=dict(attention=False))
