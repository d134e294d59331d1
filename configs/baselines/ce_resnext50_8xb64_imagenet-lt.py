# Cross-entropy baseline, ResNeXt-50 from scratch (Kang et al. 2019), 90 epochs, instance-balanced sampling.
_base_ = [
    '../_base_/datasets/imagenet_lt.py',
    '../_base_/schedules/imagenet_lt_90e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='AutoChannelClassifier',
    backbone=dict(type='TIMMBackbone', model_name='resnext50_32x4d', pretrained=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels='auto',
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))
