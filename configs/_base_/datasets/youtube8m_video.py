# YouTube-8M video-level features (IEM Sec. 4.1 / Table 3): TFRecords of tf.Example with `id`,
# `labels` (multi-label), `mean_rgb` (1024-d) and `mean_audio` (128-d), concatenated to 1152-d
# vectors; read without TensorFlow (lt_plugins.datasets.tfrecord). `data_root` holds the
# downloaded `train*.tfrecord` / `validate*.tfrecord` shards (video-level, 2018 release:
# 3,862 classes -- the paper's text says 3,696). The paper cross-validates on 5% of the
# training videos and reports on the validation set: point the val loader at the held-out
# shards and the test loader at `validate*`. Everything is loaded in memory: use a subset of
# the shards on small machines (all 3.9M training videos need ~18 GB).
dataset_type = 'FeatureVectorDataset'
data_root = 'data/youtube8m'
num_classes = 3862
feature_dim = 1152

data_preprocessor = dict(type='ClsDataPreprocessor')   # no mean/std: identity on vectors
pipeline = [dict(type='PackInputs')]
common = dict(type=dataset_type, data_root=data_root, num_classes=num_classes,
              feature_dim=feature_dim, feature_keys=('mean_rgb', 'mean_audio'),
              verify_crc=False, pipeline=pipeline)

train_dataloader = dict(
    batch_size=80,
    num_workers=2,
    dataset=dict(data_file='train*.tfrecord', **common),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    dataset=dict(data_file='validate*.tfrecord', test_mode=True, **common),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='GlobalAveragePrecision', top_k=20)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
