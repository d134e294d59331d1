# AFA + LBLS, ResNet-32 (1 input channel), FashionMNIST-LT IR100, 30-epoch CPU schedule
# (comparable with configs/baselines/ce_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py).
# 28x28 images give 14x14 maps after the second stage.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/fashion_mnist_lt_ir100.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]

lbls_start = 10  # t of Eq. 12: the paper's 30 of 90 epochs, scaled to 30 epochs
lbls_lambda = 2.0

model = dict(
    type='LabelAwareClassifier',
    backbone=dict(_delete_=True, type='TimmSplitBackbone', model_name='resnet32_cifar',
                  in_channels=1),
    neck=dict(_delete_=True, type='AFANeck', in_channels='auto', input_size=(28, 28),
              qkv='linear', mask_axis='channel', alpha=4.0, gamma=1.0),
    head=dict(type='AFAClsHead', all_loss_weight=lbls_lambda))

custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='LBLSHook', start=lbls_start, weight=lbls_lambda, by_epoch=True),
]
