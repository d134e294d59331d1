# STG stage 1 (Sec. 3.2) on ImageNet-LT: ResNet-50 from scratch, 90 epochs, SGD lr 0.2 for batch 512, cosine (Kang et al. 2019);
# instance-balanced sampling and mixup (alpha 0.2). Next: stg-stage2_resnet50_4xb128_imagenet-lt.py.
# Learning rate: the paper says "from 0.1" without a batch size; we read it as 0.1 per 256
# images and apply the linear scaling rule (Goyal et al. 2017: lr = 0.1 * total batch / 256),
# which gives 0.2 at the total batch 512 of this config (4 GPUs x 128) and is Kang et al.'s
# own setting (lr 0.2, batch 512). `auto_scale_lr = dict(base_batch_size=512)` applies the
# same rule to another total batch (tools/train.py --auto-scale-lr).
_base_ = ['../_base_/datasets/imagenet_lt.py', '../_base_/schedules/imagenet_lt_90e.py',
          '../_base_/default_runtime.py']

model = dict(
    type='AutoChannelClassifier',
    backbone=dict(type='TIMMBackbone', model_name='resnet50', pretrained=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels='auto',
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, 5)),
    train_cfg=dict(augments=dict(type='Mixup', alpha=0.2)))
train_dataloader = dict(batch_size=128)
