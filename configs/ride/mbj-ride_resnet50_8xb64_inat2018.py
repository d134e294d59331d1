# MBJ + RIDE (4 experts), ResNet-50, iNaturalist 2018, single run: RIDE's 100 epochs, then the
# feature memories (one per expert, 5 * C = 40710 slots, beta 1.5, eta 15) for 10 more epochs at
# the final lr (MBJMemorySwitchHook).
_base_ = ['./ride_resnet50_8xb64_inat2018.py']
memory_start_epoch = 100
model = dict(
    head=dict(
        mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=1.5, size=5 * 8142),
                 eta=15.0, sharing='per_expert', memory_enabled=False)))
train_cfg = dict(by_epoch=True, max_epochs=memory_start_epoch + 10, val_interval=5)
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=80),
    dict(type='MBJMemorySwitchHook', start_epoch=memory_start_epoch),
    dict(type='MBJMemoryStatsHook', interval=200),
]
