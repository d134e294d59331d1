# cRT (10 epochs, class-balanced) after the 90-epoch AFA + LBLS stage on CIFAR-10-LT IR100.
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100.py']

model = dict(
    type='DecoupledLabelAwareClassifier',
    reinit_head=True,
    head=dict(_delete_=True, type='LinearClsHead', num_classes=10, in_channels='auto',
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )))
# The classifier stage's 10-epoch schedule, written inline (mmengine refuses a schedule base
# next to the stage-1 config: duplicate keys among bases):
# 10 epochs, SGD momentum 0.9, cosine to 0; only the classifier has trainable parameters.
# Weight decay 5e-4: the paper's value for its CIFAR runs (was 2e-4, the CPU schedule's).
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
auto_scale_lr = dict(base_batch_size=128)
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
custom_hooks = [dict(type='ClassCountsHook')]
load_from = 'work_dirs/afa_resnet32-cifar_1xb128_cifar10-lt-ir100/epoch_90.pth'
