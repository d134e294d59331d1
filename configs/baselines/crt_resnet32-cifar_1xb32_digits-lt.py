# cRT on DigitsLT: frozen stage-1 backbone, re-initialised classifier, class-balanced sampling.
_base_ = ['./ce_resnet32-cifar_1xb32_digits-lt.py', '../_base_/schedules/stage2_10e.py']

model = dict(type='DecoupledClassifier', reinit_head=True)
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
optim_wrapper = dict(optimizer=dict(lr=0.05))
train_cfg = dict(val_interval=5)
auto_scale_lr = dict(base_batch_size=32)
load_from = 'work_dirs/ce_resnet32-cifar_1xb32_digits-lt/epoch_30.pth'
