# RIDE, 4 experts, ResNet-50 from scratch (timm `resnet50`), iNaturalist 2018, RIDE's schedule
# (100 epochs, batch 512, lr 0.2, weight decay 2e-4, re-weighting from epoch 80,
# reweight_factor 0.015). Experts own stages 3-4 at 0.75 width. Other backbone: `model_name`.
_base_ = [
    '../_base_/models/ride_timm_4experts.py',
    '../_base_/datasets/inat2018.py',
    '../_base_/schedules/ride_imagenet_100e.py',
    '../_base_/default_runtime.py',
]
model_name = 'resnet50'
model = dict(
    backbone=dict(model_name=model_name),
    head=dict(num_classes=8142, diversity=dict(reweight_factor=0.015)))
optim_wrapper = dict(optimizer=dict(lr=0.2))
auto_scale_lr = dict(base_batch_size=512)
train_dataloader = dict(batch_size=64)  # x 8 GPUs = 512
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=80),
]
