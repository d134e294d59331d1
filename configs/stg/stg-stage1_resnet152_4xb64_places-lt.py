# STG stage 1 (Sec. 3.2) on Places-LT: ResNet-152 initialised from ImageNet weights (timm), 30 epochs, SGD lr 0.01 for batch 256, x0.1 every 10 epochs (OLTR);
# instance-balanced sampling and mixup (alpha 0.2). Next: stg-stage2_resnet152_4xb64_places-lt.py.
_base_ = ['../_base_/datasets/places_lt.py', '../_base_/default_runtime.py']

model = dict(
    type='AutoChannelClassifier',
    backbone=dict(type='TIMMBackbone', model_name='resnet152', pretrained=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=365, in_channels='auto',
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)),
    train_cfg=dict(augments=dict(type='Mixup', alpha=0.2)))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='StepLR', step_size=10, gamma=0.1, by_epoch=True)]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
