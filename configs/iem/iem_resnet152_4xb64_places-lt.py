# IEM + RSA on Places-LT (paper Sec. 4.2): timm `resnet152` initialised from ImageNet (as
# OLTR; offline: add pretrained_cfg_overlay=dict(file=...) to the backbone), SGD lr 0.01
# momentum 0.9, 30 epochs with lr /10 every 10 (OLTR's Places-LT length; the paper gives
# only the lr), batch 256 (4 GPUs x 64); memories: Adam lr 1e-5. 365 classes x 128 slots x
# 2048 dims = 365 MiB per memory (730 MiB, 2.1 GiB with Adam moments).
_base_ = [
    '../_base_/datasets/places_lt.py',
    './_base_/iem_runtime.py',
]
model = dict(
    type='AutoChannelClassifier',
    backbone=dict(type='TIMMBackbone', model_name='resnet152', pretrained=True,
                  features_only=False),
    neck=dict(type='RSANeck', in_channels='auto'),
    head=dict(
        type='IEMHead',
        num_classes=365,
        in_channels='auto',
        global_capacity=128,
        local_capacity=128,
        num_neighbors=50,
        warmup_iters=250,            # ~1 epoch at batch 256
        local_regions=16,
        topk=(1, 5),
    ))
# memories: Adam at a constant 1e-5 (the paper's; fixed_lr: the lr schedule does not scale it)
optim_wrapper = dict(
    optimizer=dict(type='HybridSGDAdam', lr=0.01, momentum=0.9, weight_decay=5e-4),
    paramwise_cfg=dict(custom_keys={
        'head.global_memory': dict(adam=True, fixed_lr=1e-5, decay_mult=0.0),
        'head.local_memory': dict(adam=True, fixed_lr=1e-5, decay_mult=0.0),
    }))
param_scheduler = [
    dict(type='StepLR', by_epoch=True, step_size=10, gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
