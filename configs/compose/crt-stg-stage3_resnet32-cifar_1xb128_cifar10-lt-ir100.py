# cRT classifier + STG's feature generator (ComposedClsHead), ResNet-32, CIFAR-10-LT IR100: the
# STG stage 3 of configs/stg/stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100.py (frozen
# backbone, class-balanced sampling, Adam lr 1e-3, 10 epochs, tail features replaced by their
# STG augmentation, Eq. 3-4) written with the parts: a re-initialised LinearClsHead plus an
# STGFeatureGenerator. It runs on top of STG stage 2 of *any* stage-1 model with this backbone:
#   stage 1 (CE, LDAM-DRW, MBJ, ...) -> configs/stg/stg-stage2_*.py with load_from = the
#   stage-1 checkpoint (trains the generator on that model's frozen features) -> this config
#   with load_from = the stage-2 checkpoint.
# The cRT model keeps head.generator.* of the stage-2 checkpoint (ComposedClsHead's
# stage_carried_keys) and re-initialises the classifier. Other parts (memory_term,
# memory_reader) may be added to model.head. The generator's token is the most similar head
# class by prototype (token_source='classifier' stays with STGClsHead).
_base_ = ['../stg/stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100.py']

model = dict(
    reinit_head=True,
    predecessor='STG stage 2 (configs/stg/stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100'
    '.py) on the stage-1 model',
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
            lam=1.5,  # the paper's value
            mix_threshold=0.5,
            token_metric='cosine'),
    ))
