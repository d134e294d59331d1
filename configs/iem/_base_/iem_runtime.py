# Runtime of IEM: the package runtime plus IEMMemoryHook, which applies each step's staged
# memory writes after the optimizer step (before CheckpointHook, so resume is exact), zeros
# the optimizer state of overwritten slots and logs the memory bytes.
_base_ = ['../../_base_/default_runtime.py']

custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='IEMMemoryHook', log_interval=50),
]
