# RIDE, 4 experts, ResNeXt-50 32x4d from scratch (timm `resnext50_32x4d`), ImageNet-LT, RIDE's
# schedule (100 epochs, batch 256, lr 0.1, re-weighting from epoch 80, reweight_factor 0.02).
# Stem + stages 1-2 shared; each expert owns stages 3-4 at 0.75 width (RIDE's reduce_dimension:
# 192 / 384 planes). Another timm backbone: change `model_name` only.
_base_ = [
    '../_base_/models/ride_timm_4experts.py',
    '../_base_/datasets/imagenet_lt.py',
    '../_base_/schedules/ride_imagenet_100e.py',
    '../_base_/default_runtime.py',
]
model_name = 'resnext50_32x4d'
model = dict(
    backbone=dict(model_name=model_name),
    head=dict(num_classes=1000, diversity=dict(reweight_factor=0.02)))
train_dataloader = dict(batch_size=32)  # x 8 GPUs = 256
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=80),
]
