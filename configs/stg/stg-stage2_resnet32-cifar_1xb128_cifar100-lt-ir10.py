# STG stage 2 (Sec. 3.3): the stage-1 backbone frozen (no gradients, BatchNorm in eval); the
# Semantic Transformation Generator is trained on head classes (N_c > 100, the many-shot split (IR100: 35 head / 65 tail classes))
# against Eq. 1 statistics from the batch plus a FIFO dictionary of m = 1200 features,
# smoothed per sample (momentum 0.9); Adam lr 1e-3, 10 epochs. The frozen stage-1 classifier
# is kept (validation reports it; stage 3 re-initialises it for cRT).
# Needs the stage-1 checkpoint: `load_from` below. Next: stg-stage3_resnet32-cifar_1xb128_cifar100-lt-ir10.py.
# Faster: add dict(type='FeatureCacheHook', num_views=4) to `custom_hooks` (features are
# extracted once per view; the generator then sees 4 fixed augmented views instead of a new
# one per epoch).
_base_ = ['./stg-stage1_resnet32-cifar_1xb128_cifar100-lt-ir10.py']

head_threshold = 100
model = dict(
    type='FeatureCacheClassifier',
    reinit_head=False,
    predecessor='STG stage 1 (stg-stage1_resnet32-cifar_1xb128_cifar100-lt-ir10.py)',
    train_cfg=None,  # no mixup: Eq. 1 needs un-mixed features and hard labels
    head=dict(
        _delete_=True,
        type='STGGeneratorHead',
        num_classes=100,
        in_channels='auto',
        generator=dict(type='SemanticTransformationGenerator'),
        dictionary_size=1200,  # Table 6: 0 / 600 / 1200
        head_threshold=head_threshold,
        include_self=False,
        smooth_momentum=0.9,
        loss_type='mse'))
optim_wrapper = dict(_delete_=True, optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=10)]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10))
load_from = 'work_dirs/stg-stage1_resnet32-cifar_1xb128_cifar100-lt-ir10/epoch_200.pth'
