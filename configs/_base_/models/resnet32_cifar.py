# LDAM ResNet-32 (registered in timm as `resnet32_cifar`) + GAP + linear classifier.
# Any timm CNN works by changing `model_name`: AutoChannelClassifier fills in_channels='auto'.
model = dict(
    type='AutoChannelClassifier',
    backbone=dict(type='TIMMBackbone', model_name='resnet32_cifar'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels='auto',
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
    ))
