# Market-1501 in its original directory layout (bounding_box_train / query / bounding_box_test)
# under `data_root`; long-tailed training edition with `num_head_ids` head identities (all
# images kept) and every other identity cut to 5 images (Feature Cloud / MBJ protocol).
# Evaluation: query vs gallery, mAP and CMC rank-1/5/10, same-id same-camera excluded.
dataset_type = 'ReIDDataset'
data_root = 'data/market1501'
num_head_ids = 100
num_classes = 751  # training identities (all kept in the long-tailed edition)

data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

meta_keys = ('sample_idx', 'img_path', 'pid', 'camid', 'is_query')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 256)),  # (w, h)
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(256, 128), padding=10),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 256)),
    dict(type='PackInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 num_head_ids=num_head_ids, tail_images=5, seed=0, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
# No separate validation identities exist in these benchmarks; the CosFace-vs-MBJ comparison
# uses the paper's settings, not values tuned on the test split.
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='ReIDMetric', distance='cosine', topk=(1, 5, 10))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
