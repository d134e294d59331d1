# STG stage 3 (Sec. 3.4): classifier re-training (cRT: re-initialised linear classifier,
# class-balanced sampling, Adam lr 0.001, 10 epochs) on frozen features, each tail sample
# (N_c <= 100) replaced by its STG augmentation (Eq. 3-4): the token of its most similar
# head class (cosine to the head-class mean features), lambda = 0.5 (chosen on
# validation, arm `stg` of tools/benchmark/run.py; the paper: 1.5), t = 0.5.
# Table 7 switches: model.head.augment='gaussian' (noise_std) / 'dropout' (dropout_p) /
# 'none' (plain cRT); model.head.classifier='lws' for LWS.
# Needs the stage-2 checkpoint: `load_from` below.
_base_ = ['./stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(
    predecessor='STG stage 2 (stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py)',
    head=dict(
        _delete_=True,
        type='STGClsHead',
        num_classes=10,
        in_channels='auto',
        generator=dict(type='SemanticTransformationGenerator'),
        head_threshold={{_base_.head_threshold}},
        augment='stg',
        lam=0.5,  # chosen on validation (3 seeds; the paper: 1.5, see README)
        mix_threshold=0.5,
        token_metric='cosine',
        classifier='crt'))
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
optim_wrapper = dict(_delete_=True, optimizer=dict(type='Adam', lr=0.001))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=10)]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
default_hooks = dict(checkpoint=dict(interval=10))
load_from = 'work_dirs/stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_10.pth'
