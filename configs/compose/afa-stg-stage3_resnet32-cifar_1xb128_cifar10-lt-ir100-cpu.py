# AFA + STG, stage 3: cRT classifier + STG's feature generator (ComposedClsHead) on the frozen
# AFA + LBLS representation (chain: afa_*-cpu.py -> afa-stg-stage2_*-cpu.py -> this): the classifier
# re-initialised, class-balanced sampling, Adam lr 1e-3, 10 epochs, tail features replaced by
# their STG augmentation (Eq. 3-4) with the generator of stage 2 (head.generator.* kept from
# its checkpoint, ComposedClsHead's stage_carried_keys). AFA's own generation is off in this
# stage (frozen neck), as in AFA's cRT stage.
_base_ = ['./afa-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(
    reinit_head=True,
    head=dict(
        _delete_=True,
        type='ComposedClsHead',
        num_classes=10,
        in_channels='auto',
        classifier=dict(type='LinearClsHead', loss=dict(type='CrossEntropyLoss'),
                        topk=(1, )),
        generator=dict(
            type='STGFeatureGenerator',
            generator=dict(type='SemanticTransformationGenerator'),
            head_threshold={{_base_.head_threshold}},
            augment='stg',
            lam=0.5,  # as crt-stg-stage3_*-cpu.py
            mix_threshold=0.5,
            token_metric='cosine'),
    ))
train_dataloader = dict(sampler=dict(_delete_=True, type='ClassBalancedSampler', shuffle=True))
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
load_from = 'work_dirs/afa-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_10.pth'
