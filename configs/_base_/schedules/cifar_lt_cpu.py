# The CPU schedule shared by every accuracy benchmark of this package: 30 epochs,
# SGD lr 0.1 (batch 128), momentum 0.9, weight decay 2e-4, 5 linear warm-up epochs, cosine.
# Epoch constants of the papers' 200-epoch schedule scale by 30 / 200.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4, nesterov=False))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=25, eta_min=0.0, by_epoch=True, begin=5, end=30,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
