# RIDE's expert-assignment (router) stage on ImageNet-LT (`*_ride_ea.json`): load the trained RIDE
# model, train only the routers for 5 epochs with class-balanced sampling, batch 512, SGD lr 0.01
# nesterov, cosine; top_choices 50, pos_weight 100. ExpertUsage reports experts per sample.
_base_ = ['./ride_resnext50_8xb32_imagenet-lt.py']
model = dict(
    head=dict(router=dict(hidden=16, top_choices=50, pos_weight=100.0, shared_fc=True),
              train_router=True))
train_dataloader = dict(batch_size=64,
                        sampler=dict(_delete_=True, type='ClassBalancedSampler', shuffle=True))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=5, eta_min=0.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=1)
auto_scale_lr = dict(base_batch_size=512)
custom_hooks = [dict(type='ClassCountsHook')]
val_evaluator = [dict(type='ShotAccuracy', topk=(1, 5)), dict(type='ExpertUsage', num_experts=4)]
test_evaluator = val_evaluator
load_from = 'work_dirs/ride_resnext50_8xb32_imagenet-lt/epoch_100.pth'
