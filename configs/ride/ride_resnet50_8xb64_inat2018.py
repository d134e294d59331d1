# RIDE, 4 experts, ResNet-50 from scratch (timm `resnet50`), iNaturalist 2018, RIDE's schedule
# (100 epochs, batch 512, lr 0.2, weight decay 2e-4, re-weighting from epoch 80,
# reweight_factor 0.015). Experts own stages 3-4 at 0.75 width. Other backbone: `model_name`.
_base_ = [
    '../_base_/datasets/inat2018.py',
    '../_base_/schedules/ride_imagenet_100e.py',
    '../_base_/default_runtime.py',
]
model_name = 'resnet50'
num_experts = 4
model = dict(
    type='RIDEClassifier',
    backbone=dict(type='MultiExpertBackbone', model_name=model_name, pretrained=False,
                  num_experts=num_experts, tail_stages=2, width_factor=0.75),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='RIDEHead',
        num_classes=8142,
        in_channels='auto',
        num_experts=num_experts,
        classifier='cosine',
        scale=30.0,
        loss=dict(type='LDAMLoss', max_margin=0.5, drw_beta=0.9999),
        diversity=dict(type='RIDEDiversityLoss', loss_weight=-0.2, base_temperature=1.0,
                       reweight_factor=0.015),
        topk=(1, 5),
    ))
optim_wrapper = dict(optimizer=dict(lr=0.2))
auto_scale_lr = dict(base_batch_size=512)
train_dataloader = dict(batch_size=64)  # x 8 GPUs = 512
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=80),
]
