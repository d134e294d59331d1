# AFA + LBLS as in the paper (Table IV): ResNeXt-50 (timm resnext50_32x4d, from scratch) on
# ImageNet-LT, AFANeck after the third stage (1024 channels, 14x14 for 224x224 crops),
# 90 epochs, batch 512 (4 x 128), SGD lr 0.2, momentum 0.9, weight decay 5e-4, cosine to 0,
# LBLS t = 30, lambda = 2, alpha = 4, gamma = 1.
# Follow with afa-crt_resnext50_4xb128_imagenet-lt.py.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/imagenet_lt.py',
    '../_base_/schedules/imagenet_lt_90e.py',
    '../_base_/default_runtime.py',
]

lbls_start = 30
lbls_lambda = 2.0

model = dict(
    type='LabelAwareClassifier',
    backbone=dict(_delete_=True, type='TimmSplitBackbone', model_name='resnext50_32x4d'),
    neck=dict(_delete_=True, type='AFANeck', in_channels='auto', input_size=(224, 224),
              qkv='linear', mask_axis='channel', alpha=4.0, gamma=1.0),
    head=dict(type='AFAClsHead', num_classes=1000, in_channels='auto',
              all_loss_weight=lbls_lambda))

train_dataloader = dict(batch_size=128)
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='LBLSHook', start=lbls_start, weight=lbls_lambda, by_epoch=True),
]
