# The LDAM / CIFAR-LT paper schedule: 200 epochs, SGD lr 0.1 (batch 128), momentum 0.9,
# weight decay 2e-4, 5 linear warm-up epochs, lr x0.1 at epochs 160 and 180.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4, nesterov=False))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[160, 180], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
