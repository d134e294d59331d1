# IEM + RSA on iNaturalist 2018 (paper Sec. 4.2): timm `resnet50` from scratch, 90 epochs,
# SGD lr 0.1 momentum 0.9, lr /10 at epochs 30 and 60, batch 256 (4 GPUs x 64); memories:
# Adam lr 1e-5. 8142 classes x 2048 dims make the bank large: the paper's n = 50 neighbours
# need at least 50 slots per class, 3.1 GiB per memory (6.2 GiB for both, 18.6 GiB with
# Adam moments, plus 6.2 GiB of dense gradient: ~25 GiB per GPU on top of the network; use
# 40 GB+ GPUs, or capacity = num_neighbors = 16 for 2 GiB / 6 GiB on smaller ones).
_base_ = [
    '../_base_/datasets/inat2018.py',
    './_base_/iem_runtime.py',
]
model = dict(
    type='AutoChannelClassifier',
    backbone=dict(type='TIMMBackbone', model_name='resnet50', pretrained=False,
                  features_only=False),
    neck=dict(type='RSANeck', in_channels='auto'),
    head=dict(
        type='IEMHead',
        num_classes=8142,
        in_channels='auto',
        global_capacity=50,
        local_capacity=50,
        num_neighbors=50,
        warmup_iters=1700,           # ~1 epoch at batch 256
        local_regions=16,
        topk=(1, 5),
    ))
# memories: Adam at a constant 1e-5 (the paper's; fixed_lr: the lr schedule does not scale it)
optim_wrapper = dict(
    optimizer=dict(type='HybridSGDAdam', lr=0.1, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={
        'head.global_memory': dict(adam=True, fixed_lr=1e-5, decay_mult=0.0),
        'head.local_memory': dict(adam=True, fixed_lr=1e-5, decay_mult=0.0),
    }))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
