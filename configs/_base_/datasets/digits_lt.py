# DigitsLT: scikit-learn's bundled 8x8 digits, long-tailed (n_max 150, IR 25): 481 training
# images, balanced 200-image test set. Ships with scikit-learn: no download, minutes on CPU.
dataset_type = 'DigitsLT'

data_preprocessor = dict(num_classes=10, mean=[78.0], std=[96.0])

train_pipeline = [
    dict(type='RandomCrop', crop_size=8, padding=1),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
    # 481 = 15 * 32 + 1: without it the last batch holds one image, which BatchNorm cannot
    # normalise on backbones whose last map is 1x1 (MobileNet, ResNet-18 on 8x8 images)
    drop_last=True,
)
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    dataset=dict(type=dataset_type, split='val', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='ShotAccuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=100,
    num_workers=0,
    dataset=dict(type=dataset_type, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = val_evaluator
