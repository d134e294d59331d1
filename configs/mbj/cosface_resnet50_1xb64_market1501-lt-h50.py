# Re-ID baseline of MBJ Table 4: CosFace only (same model, data and schedule as MBJ-W, the
# memory never switched on), ResNet-50, long-tailed Market-1501 with H = 50 head identities.
_base_ = [
    './_base_/reid_market1501_lt.py',
    './_base_/reid_resnet50_cosface.py',
    '../_base_/default_runtime.py',
]
num_head_ids = 50
train_dataloader = dict(dataset=dict(num_head_ids=num_head_ids))
model = dict(head=dict(num_classes=751, memory_enabled=False))
custom_hooks = [dict(type='ClassCountsHook')]
