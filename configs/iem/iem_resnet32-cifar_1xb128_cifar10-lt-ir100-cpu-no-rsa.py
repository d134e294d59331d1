# IEM + RSA, ResNet-32, CIFAR-10-LT IR100, CPU schedule -- Table 5 'w/o RSA': RSA replaced
# by average pooling (the classifier reads GAP, regions are plain region means). Uniform
# weights cannot rank regions, so the local memory takes all 225 regions (slower reads).
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(neck=dict(attention=False), head=dict(local_regions=None))
