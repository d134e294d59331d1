# MBJ + RIDE (4 experts), ResNeXt-50, ImageNet-LT, single run: RIDE's 100 epochs, then
# MBJMemorySwitchHook turns the feature memories on (one per expert, 5 * C = 5000 slots,
# beta 1.5, eta 15) for 10 more epochs at the final lr (0.001): MBJ's "converge, then memory
# at a small lr" (Algorithm 1).
_base_ = ['./ride_resnext50_8xb32_imagenet-lt.py']
memory_start_epoch = 100
model = dict(
    head=dict(
        mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=1.5, size=5 * 1000),
                 eta=15.0, sharing='per_expert', memory_enabled=False)))
train_cfg = dict(by_epoch=True, max_epochs=memory_start_epoch + 10, val_interval=5)
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=80),
    dict(type='MBJMemorySwitchHook', start_epoch=memory_start_epoch),
    dict(type='MBJMemoryStatsHook', interval=200),
]
