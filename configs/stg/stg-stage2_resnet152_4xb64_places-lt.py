# STG stage 2 (Sec. 3.3) on Places-LT: frozen stage-1 backbone; the generator is trained on the
# many-shot classes (N_c > 100) with a dictionary of m = 1200 features (Table 6: the
# dictionary matters most here, many head classes share a mini-batch), Adam lr 1e-3,
# 10 epochs. The per-sample smoothing state ((N, 2048) x 2 floats, ~1.9 GB for ImageNet-LT)
# stays on the device but out of checkpoints (smooth_persistent=False).
# Needs the stage-1 checkpoint (`load_from`). Next: stg-stage3_resnet152_4xb64_places-lt.py.
_base_ = ['./stg-stage1_resnet152_4xb64_places-lt.py']

head_threshold = 100
model = dict(
    type='FeatureCacheClassifier',
    reinit_head=False,
    predecessor='STG stage 1 (stg-stage1_resnet152_4xb64_places-lt.py)',
    train_cfg=None,
    head=dict(
        _delete_=True,
        type='STGGeneratorHead',
        num_classes=365,
        in_channels='auto',
        generator=dict(type='SemanticTransformationGenerator'),
        dictionary_size=1200,
        head_threshold=head_threshold,
        include_self=False,
        smooth_momentum=0.9,
        smooth_persistent=False,
        loss_type='mse',
        topk=(1, 5)))
optim_wrapper = dict(_delete_=True, optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=10)]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10))
load_from = 'work_dirs/stg-stage1_resnet152_4xb64_places-lt/epoch_30.pth'
