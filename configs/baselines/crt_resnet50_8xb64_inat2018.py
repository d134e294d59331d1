# cRT: frozen stage-1 backbone, re-initialised classifier, 10 epochs of class-balanced sampling.
_base_ = ['./ce_resnet50_8xb64_inat2018.py']

model = dict(type='DecoupledClassifier', reinit_head=True)
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=10, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=10, val_interval=2)
load_from = 'work_dirs/ce_resnet50_8xb64_inat2018/epoch_90.pth'
