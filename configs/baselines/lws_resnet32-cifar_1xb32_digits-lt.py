# LWS (Kang et al. 2019): stage-1 backbone and classifier frozen, one learnable scale per class,
# 10 epochs of class-balanced sampling. Run `ce_resnet32-cifar_1xb32_digits-lt.py` first.
_base_ = ['./ce_resnet32-cifar_1xb32_digits-lt.py']

model = dict(type='DecoupledClassifier', reinit_head=False, head=dict(type='LWSHead'))
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=2e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
load_from = 'work_dirs/ce_resnet32-cifar_1xb32_digits-lt/epoch_30.pth'
