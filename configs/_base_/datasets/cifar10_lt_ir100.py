# CIFAR-10-LT, imbalance ratio 100 (LDAM protocol): 12,406 training images.
# `data_root` is the `cifar-10-batches-py` folder (or its parent). A rebuilt copy with
# other md5 sums needs `verify_md5=False` (e.g. ../shared/data in this project's benchmarks).
dataset_type = 'CIFAR10LT'
data_root = 'data/cifar10'
imb_factor = 100

data_preprocessor = dict(
    num_classes=10,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
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
# Model selection uses the balanced validation split (discarded training images);
# the test split is only for the final report.
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
