# afa_resnext50_1xb128_cifar10-lt-ir100.py with the CIFAR stem (TimmSplitBackbone cifar_stem=True:
# 3x3 stride-1 conv1, no max-pool), the usual stem of CIFAR ResNe(X)ts: 32x32 images give
# 8x8 maps (1024 channels) at the AFA insertion point after stage 3 instead of the ImageNet
# stem's 2x2, and 4x4 after stage 4. The paper names ResNeXt-50 without saying which stem;
# this variant is ours. Follow with afa-crt_resnext50_1xb128_cifar10-lt-ir100-cifarstem.py.
_base_ = ['./afa_resnext50_1xb128_cifar10-lt-ir100.py']

model = dict(backbone=dict(cifar_stem=True))
