# Cross-entropy baseline, ResNet-152. The protocol starts from ImageNet-pretrained weights: offline, download them
# elsewhere and set backbone.pretrained=True with pretrained_cfg_overlay=dict(file=...), 90 epochs, instance-balanced sampling.
_base_ = [
    '../_base_/datasets/places_lt.py',
    '../_base_/schedules/imagenet_lt_90e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='AutoChannelClassifier',
    backbone=dict(type='TIMMBackbone', model_name='resnet152', pretrained=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=365, in_channels='auto',
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)))
