# RIDE's ImageNet-LT / iNaturalist schedule (its `config_imagenet_lt_resnext50_ride.json`,
# `config_iNaturalist_resnet50_ride.json`): 100 epochs, SGD nesterov, momentum 0.9, weight decay
# 2e-4, 5 linear warm-up epochs, lr x0.1 at epochs 60 and 80; re-weighting from epoch 80
# (DRWHook in the method configs). lr 0.1 for batch 256 (ImageNet-LT); iNat configs set 0.2 / 512.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4, nesterov=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[60, 80], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
