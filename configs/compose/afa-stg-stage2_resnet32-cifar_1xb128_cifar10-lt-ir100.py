# AFA + STG, stage 2: STG's generator (Sec. 3.3) trained on the frozen features of the AFA +
# LBLS model of configs/afa/afa_resnet32-cifar_1xb128_cifar10-lt-ir100.py. The model is the
# one of AFA's cRT stage (DecoupledLabelAwareClassifier: trunk, AFANeck and last stage frozen,
# in eval mode, so the neck gives the enhanced features and generates nothing), with STG's
# stage-2 head: the generator is regressed on head-class features (N_c > 100) against Eq. 1
# statistics (batch + FIFO dictionary of 1200, smoothed per sample), instance sampling, Adam
# lr 1e-3, 10 epochs, as configs/stg/stg-stage2_*.py. The AFA classifier (head.fc.*) is
# kept frozen, so validation reports the AFA model.
# Next: afa-stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100.py.
_base_ = ['../afa/afa-crt_resnet32-cifar_1xb128_cifar10-lt-ir100.py']

head_threshold = 100
model = dict(
    reinit_head=False,
    head=dict(
        _delete_=True,
        type='STGGeneratorHead',
        num_classes=10,
        in_channels='auto',
        generator=dict(type='SemanticTransformationGenerator'),
        dictionary_size=1200,
        head_threshold=head_threshold,
        include_self=False,
        smooth_momentum=0.9,
        loss_type='mse'))
train_dataloader = dict(sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True))
optim_wrapper = dict(_delete_=True, optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=10)]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10))
custom_hooks = [dict(type='ClassCountsHook')]
load_from = 'work_dirs/afa_resnet32-cifar_1xb128_cifar10-lt-ir100/epoch_90.pth'
