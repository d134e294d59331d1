# RIDE, 4 experts, ResNeXt-50 32x4d from scratch (timm `resnext50_32x4d`), ImageNet-LT, RIDE's
# schedule (100 epochs, batch 256, lr 0.1, re-weighting from epoch 80, reweight_factor 0.02).
# Stem + stages 1-2 shared; each expert owns stages 3-4 at 0.75 width (RIDE's reduce_dimension:
# 192 / 384 planes). Another timm backbone: change `model_name` only.
_base_ = [
    '../_base_/datasets/imagenet_lt.py',
    '../_base_/schedules/ride_imagenet_100e.py',
    '../_base_/default_runtime.py',
]
model_name = 'resnext50_32x4d'
num_experts = 4
model = dict(
    type='RIDEClassifier',
    backbone=dict(type='MultiExpertBackbone', model_name=model_name, pretrained=False,
                  num_experts=num_experts, tail_stages=2, width_factor=0.75),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='RIDEHead',
        num_classes=1000,
        in_channels='auto',
        num_experts=num_experts,
        classifier='cosine',
        scale=30.0,
        loss=dict(type='LDAMLoss', max_margin=0.5, drw_beta=0.9999),
        diversity=dict(type='RIDEDiversityLoss', loss_weight=-0.2, base_temperature=1.0,
                       reweight_factor=0.02),
        topk=(1, 5),
    ))
train_dataloader = dict(batch_size=32)  # x 8 GPUs = 256
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=80),
]
