# Re-ID model and schedule shared by the CosFace baseline and MBJ-W: timm ResNet-50 (set
# `pretrained=True` for ImageNet weights; offline, point timm at a local file with
# `pretrained_cfg_overlay=dict(file='/path/resnet50.pth')`), global average pooling, and
# MBJMetricHead (CosFace scale 64 / margin 0.35; prototype memory 5 * C, beta 1.5, Circle
# memory loss of Eq. 4, eta = 1/15). Another timm backbone: change `model_name` (the head's
# in_channels='auto' becomes its feature width, timm's `num_features`).
model_name = 'resnet50'
memory_start_epoch = 40  # CosFace until convergence, then MBJ at 1/10 of the lr (Algorithm 2)

model = dict(
    type='AutoChannelClassifier',
    backbone=dict(type='TIMMBackbone', model_name=model_name, pretrained=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MBJMetricHead',
        num_classes=751,
        in_channels='auto',
        loss=dict(type='CosFaceLoss', scale=64.0, margin=0.35),
        memory=dict(type='RebalancedFIFOMemory', beta=1.5, admission='max_normalized'),
        memory_loss=dict(type='CircleMemoryLoss', scale=64.0, margin=0.35),
        eta=1.0 / 15.0,
        memory_enabled=False,
    ))

optim_wrapper = dict(optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[memory_start_epoch], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=60, val_interval=20)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
