# MBJ + RIDE (4 experts), ResNet-152, Places-LT, single run: the 30 RIDE epochs (cosine, here to
# lr 0.001 instead of 0), then the feature memories (one per expert, 5 * C = 1825 slots, beta
# 1.5, eta 15) for 10 more epochs at that lr (MBJMemorySwitchHook).
_base_ = ['./ride_resnet152_8xb32_places-lt.py']
memory_start_epoch = 30
model = dict(
    head=dict(
        mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=1.5, size=5 * 365),
                 eta=15.0, sharing='per_expert', memory_enabled=False)))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=memory_start_epoch, eta_min=0.001, by_epoch=True,
         begin=0, end=memory_start_epoch, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=memory_start_epoch + 10, val_interval=5)
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=24),
    dict(type='MBJMemorySwitchHook', start_epoch=memory_start_epoch),
    dict(type='MBJMemoryStatsHook', interval=200),
]
