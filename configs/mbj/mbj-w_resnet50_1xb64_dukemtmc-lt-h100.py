# MBJ-W (prototype memory, Sec. 3.3 / Algorithm 2) for long-tailed DukeMTMC-reID, H = 100:
# CosFace for 40 epochs, then the prototype memory with the Circle memory loss (eta = 1/15)
# for 20 epochs at lr x0.1 (MBJMemorySwitchHook). Compare with
# cosface_resnet50_1xb64_dukemtmc-lt-h100.py.
_base_ = [
    './_base_/reid_dukemtmc_lt.py',
    './_base_/reid_resnet50_cosface.py',
    '../_base_/default_runtime.py',
]
num_head_ids = 100
train_dataloader = dict(dataset=dict(num_head_ids=num_head_ids))
model = dict(head=dict(num_classes=702))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='MBJMemorySwitchHook', start_epoch=40),  # = memory_start_epoch of the base
    dict(type='MBJMemoryStatsHook', interval=100),
]
