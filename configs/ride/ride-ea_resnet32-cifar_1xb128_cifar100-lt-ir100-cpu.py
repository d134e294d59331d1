# RIDE's expert-assignment (router) stage, CIFAR100-LT IR100: load the trained RIDE model,
# freeze everything but the routers and train them 5 epochs with class-balanced sampling, SGD
# lr 0.01 nesterov + cosine (RIDE's `*_ride_ea.json`; top_choices 30, pos_weight 100).
# At test time the experts run one by one and the router decides per sample whether to go on;
# ExpertUsage reports the experts used per sample.
_base_ = ['./ride_resnet32-cifar_1xb128_cifar100-lt-ir100-cpu.py']
model = dict(
    head=dict(router=dict(hidden=16, top_choices=30, pos_weight=100.0, shared_fc=True),
              train_router=True))
train_dataloader = dict(sampler=dict(_delete_=True, type='ClassBalancedSampler', shuffle=True))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=5, eta_min=0.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=1)
custom_hooks = [dict(type='ClassCountsHook')]
val_evaluator = [dict(type='ShotAccuracy', topk=(1, )), dict(type='ExpertUsage', num_experts=4)]
test_evaluator = val_evaluator
load_from = 'work_dirs/ride_resnet32-cifar_1xb128_cifar100-lt-ir100-cpu/epoch_30.pth'
