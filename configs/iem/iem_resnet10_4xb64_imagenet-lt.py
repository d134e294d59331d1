# IEM + RSA on ImageNet-LT (paper Sec. 4.2): the plain OLTR ResNet-10 from scratch (timm
# `resnet10`, registered by lt_plugins: BasicBlock x [1, 1, 1, 1], 7x7 stem), 30 epochs,
# SGD lr 0.1 momentum 0.9, lr /10 every 10 epochs, batch 256 (4 GPUs x 64). Memories: Adam
# lr 1e-5. The final map is 7x7x512: 169 regions up to 2x2, 16 most attended kept.
# Memory cost: 1000 classes x 256 slots x 512 dims = 500 MiB per memory (global + local =
# 1 GiB, 3 GiB with Adam moments; under DDP the 1 GiB gradient is all-reduced every step).
# The paper's 50,000 slots per class would need 100 GiB per memory.
_base_ = [
    '../_base_/datasets/imagenet_lt.py',
    './_base_/iem_runtime.py',
]
model = dict(
    type='AutoChannelClassifier',
    backbone=dict(type='TIMMBackbone', model_name='resnet10', pretrained=False,
                  features_only=False),
    neck=dict(type='RSANeck', in_channels='auto'),
    head=dict(
        type='IEMHead',
        num_classes=1000,
        in_channels='auto',
        global_capacity=256,
        local_capacity=256,
        num_neighbors=50,
        warmup_iters=450,            # ~1 epoch at batch 256
        local_regions=16,
        topk=(1, 5),
    ))
# memories: Adam at a constant 1e-5 (the paper's; fixed_lr: the lr schedule does not scale it)
optim_wrapper = dict(
    optimizer=dict(type='HybridSGDAdam', lr=0.1, momentum=0.9, weight_decay=5e-4),
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
