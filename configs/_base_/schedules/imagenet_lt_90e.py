# ImageNet-LT / iNaturalist / Places-LT stage 1 (Kang et al. 2019): 90 epochs, SGD lr 0.2
# for batch 512 (scaled by auto_scale_lr), momentum 0.9, weight decay 5e-4, cosine.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=90, eta_min=0.0, by_epoch=True, begin=0, end=90,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=512)
