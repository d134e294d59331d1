# STG stage 3 (Sec. 3.4) on Places-LT: class-balanced re-training of an LWS classifier (the
# paper uses MiSLAS' generalised classifier on large sets; LWS is the decoupled classifier
# offered here, classifier='crt' for cRT) with STG-augmented tail features (lambda 1.5,
# t 0.5), Adam with cosine lr 1e-3 -> 0, 10 epochs. Needs the stage-2 checkpoint.
_base_ = ['./stg-stage2_resnet152_4xb64_places-lt.py']

model = dict(
    predecessor='STG stage 2 (stg-stage2_resnet152_4xb64_places-lt.py)',
    head=dict(
        _delete_=True,
        type='STGClsHead',
        num_classes=365,
        in_channels='auto',
        generator=dict(type='SemanticTransformationGenerator'),
        head_threshold={{_base_.head_threshold}},
        augment='stg',
        lam=1.5,
        mix_threshold=0.5,
        classifier='lws',
        topk=(1, 5)))
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
optim_wrapper = dict(_delete_=True, optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True,
                        begin=0, end=10, convert_to_iter_based=True)]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
default_hooks = dict(checkpoint=dict(interval=10))
load_from = 'work_dirs/stg-stage2_resnet152_4xb64_places-lt/epoch_10.pth'
