# FashionMNIST-LT, imbalance ratio 100: 14,886 grey 28x28 training images (8 many / 2 medium).
# `data_root` holds the four gzipped IDX files. Models need `in_channels=1` on the backbone.
dataset_type = 'FashionMNISTLT'
data_root = 'data/fashion-mnist'
imb_factor = 100

data_preprocessor = dict(num_classes=10, mean=[72.94], std=[90.02])

train_pipeline = [
    dict(type='RandomCrop', crop_size=28, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 imb_factor=imb_factor, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 imb_factor=imb_factor, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='ShotAccuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=256,
    num_workers=2,
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 imb_factor=imb_factor, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = val_evaluator
