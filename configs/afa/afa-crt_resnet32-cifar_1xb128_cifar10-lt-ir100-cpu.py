# cRT after AFA + LBLS (the paper's second stage, "LTVR + Crt"): backbone (trunk and last
# stage) and AFANeck frozen in eval mode (enhanced features only, no generation), a fresh
# linear classifier re-trained for 10 epochs with class-balanced sampling.
# Run afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py first.
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(
    type='DecoupledLabelAwareClassifier',
    reinit_head=True,
    head=dict(_delete_=True, type='LinearClsHead', num_classes=10, in_channels='auto',
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )))
# The classifier stage's 10-epoch schedule, written inline (mmengine refuses a schedule base
# next to the stage-1 config: duplicate keys among bases):
# 10 epochs, SGD momentum 0.9, cosine to 0; only the classifier has trainable parameters.
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
auto_scale_lr = dict(base_batch_size=128)
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
custom_hooks = [dict(type='ClassCountsHook')]  # no LBLS in the classifier stage
load_from = 'work_dirs/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
