# Cross-entropy baseline, ResNet-50 from scratch (Kang et al. 2019), 90 epochs, instance-balanced sampling.
_base_ = [
    '../_base_/datasets/inat2018.py',
    '../_base_/schedules/imagenet_lt_90e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='AutoChannelClassifier',
    backbone=dict(type='TIMMBackbone', model_name='resnet50', pretrained=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=8142, in_channels='auto',
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))
