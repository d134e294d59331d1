# MBJ-F in one run: 30 epochs of plain CE (the CPU schedule, cosine decay to lr 0.01 instead
# of 0), then MBJMemorySwitchHook turns the memory loss on for 10 more epochs at lr 0.01.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt_ir100.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]
memory_start_epoch = 30
model = dict(
    head=dict(
        type='MBJClsHead',
        num_classes=10,
        in_channels='auto',
        memory=dict(type='RebalancedFIFOMemory', beta=1.5, size=5 * 10),
        eta=15.0,
        memory_enabled=False,
    ))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=25, eta_min=0.01, by_epoch=True, begin=5,
         end=memory_start_epoch, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=memory_start_epoch + 10, val_interval=5)
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='MBJMemorySwitchHook', start_epoch=memory_start_epoch),
    dict(type='MBJMemoryStatsHook', interval=50),
]
