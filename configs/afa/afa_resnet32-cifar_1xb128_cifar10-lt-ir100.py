# AFA + LBLS, ResNet-32, CIFAR-10-LT IR100, the paper's stage-1 hyper-parameters: 90 epochs,
# SGD momentum 0.9, weight decay 5e-4, cosine decay to 0, LBLS t = 30, lambda = 2,
# alpha = 4, gamma = 1. The lr keeps the strong baseline's (Kang et al.) ratio 0.2 / 512.
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

lbls_start = 30
model = dict(head=dict(all_loss_weight=2.0))
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=90, eta_min=0.0, by_epoch=True, begin=0, end=90,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=5)
auto_scale_lr = dict(base_batch_size=128)
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='LBLSHook', start=lbls_start, weight=2.0, by_epoch=True),
]
