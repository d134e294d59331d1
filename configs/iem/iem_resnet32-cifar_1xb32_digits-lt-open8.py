# IEM (global memory only, GAP features: 8x8 digits give a 2x2 final map) on the open split of
# DigitsLT, with the memory open-set confidence (open_confidence='memory_mass'): the smoke run
# of the IEM open-set path. Minutes on one CPU core.
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/digits_lt_open8.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    './_base_/iem_runtime.py',
]
model = dict(
    backbone=dict(in_channels=1),
    head=dict(_delete_=True, type='IEMHead', num_classes=8, in_channels='auto',
              use_local_memory=False, global_capacity=64, num_neighbors=10, warmup_iters=15,
              inference_weights=dict(classifier=0.5, global_memory=0.5),
              open_confidence='memory_mass', topk=(1, )))
optim_wrapper = dict(
    optimizer=dict(type='HybridSGDAdam', lr=0.05),
    paramwise_cfg=dict(custom_keys={
        'head.global_memory': dict(adam=True, lr_mult=1e-4, decay_mult=0.0)}))
train_cfg = dict(val_interval=10)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=10))
val_evaluator = dict(confidence_key='open_confidence')
test_evaluator = dict(confidence_key='open_confidence')
