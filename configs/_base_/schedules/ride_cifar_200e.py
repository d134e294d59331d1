# RIDE's CIFAR-LT schedule (its `config_imbalance_cifar100_ride.json`): 200 epochs, batch 128,
# SGD lr 0.1 nesterov, momentum 0.9, weight decay 5e-4, 5 linear warm-up epochs, lr x0.01 at
# epoch 160 and x0.0001 at 180 (CustomLR with gamma 0.01). Re-weighting (DRW and the diversity
# temperature) from epoch 160: DRWHook in the method configs.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[160, 180], gamma=0.01),
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
