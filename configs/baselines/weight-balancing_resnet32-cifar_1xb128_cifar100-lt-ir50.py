# Weight balancing (Alshammari et al., CVPR 2022), stage 2, ResNet-32, CIFAR-100-LT IR50: the
# stage-1 model of weight-balancing-stage1_resnet32-cifar_1xb128_cifar100-lt-ir50.py with its
# backbone frozen and its classifier (kept, not re-initialised) fine-tuned 10 epochs with the
# class-balanced loss (effective number, beta 0.9999), weight decay 0.1 and the MaxNorm constraint
# (MaxNormHook: rows projected after every step onto the ball of radius min + 0.1 * (max - min) of
# the stage-1 row norms), SGD lr 0.02 for batch 128 (the paper: 0.01 at batch 64), momentum 0.9,
# cosine; the paper's second stage. Instance-balanced sampling (the loss balances).
_base_ = ['./weight-balancing-stage1_resnet32-cifar_1xb128_cifar100-lt-ir50.py']

model = dict(
    type='DecoupledClassifier',
    reinit_head=False,
    head=dict(loss=dict(_delete_=True, type='ClassBalancedLoss', beta=0.9999)))
optim_wrapper = dict(optimizer=dict(lr=0.02, momentum=0.9, weight_decay=0.1))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
custom_hooks = [dict(type='ClassCountsHook'), dict(type='MaxNormHook', relative=0.1)]
load_from = 'work_dirs/weight-balancing-stage1_resnet32-cifar_1xb128_cifar100-lt-ir50/epoch_200.pth'
