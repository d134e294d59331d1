# MBJ-F on iNaturalist 2018, ResNet-50 from scratch, the paper's 200-epoch setting (Table 3,
# 70.0 top-1): 190 epochs of CE (cosine decay to lr 0.002), then the feature memory for the
# last 10 epochs at that lr. Everything else as mbj_resnet50_4xb128_inat2018.py (90 epochs).
_base_ = ['./mbj_resnet50_4xb128_inat2018.py']
memory_start_epoch = 190
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=memory_start_epoch, eta_min=0.002, by_epoch=True,
         begin=0, end=memory_start_epoch, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=memory_start_epoch + 10)
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='MBJMemorySwitchHook', start_epoch=memory_start_epoch),
    dict(type='MBJMemoryStatsHook', interval=200),
]
