# RIDE, 4 experts, ImageNet-pretrained ResNet-152 (timm `resnet152`, pretrained=True: offline,
# add pretrained_cfg_overlay=dict(file=...) to the backbone), Places-LT. RIDE reports no Places-LT
# setting; our choice follows the MBJ Places config (30 epochs, lr 0.01, batch 256, cosine) with
# re-weighting from epoch 24 (0.8 of the schedule, as RIDE's 160/200 and 80/100) and ImageNet-LT's
# reweight_factor 0.02. Every expert starts from the pretrained stages 3-4 (full width: the
# pretrained weights fix the widths).
_base_ = [
    '../_base_/models/ride_timm_4experts.py',
    '../_base_/datasets/places_lt.py',
    '../_base_/default_runtime.py',
]
model_name = 'resnet152'
model = dict(
    backbone=dict(model_name=model_name, pretrained=True, width_factor=1.0),
    head=dict(num_classes=365, diversity=dict(reweight_factor=0.02)))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=30, eta_min=0.0, by_epoch=True, begin=0, end=30,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
train_dataloader = dict(batch_size=32)  # x 8 GPUs = 256
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=24),
]
