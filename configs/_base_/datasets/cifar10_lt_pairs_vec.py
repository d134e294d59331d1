# Vector benchmark at CPU scale (the YouTube-8M setting of IEM Table 3 on real images):
# 64-d GAP features of CIFAR-10-LT IR100 extracted by a trained CE ResNet-32 (30-epoch CPU
# run), each image paired with a random image of another class -> a two-label "video"
# (mean of the two vectors), long-tailed label frequencies. Build the files with
#   for s in train val test; do python tools/extract_features.py \
#     configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py \
#     work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth \
#     --split $s --pairs --out data/cifar10_lt_vec/${s}_pairs.npz; done
dataset_type = 'FeatureVectorDataset'
data_root = 'data/cifar10_lt_vec'
num_classes = 10
feature_dim = 64

data_preprocessor = dict(type='ClsDataPreprocessor')   # identity on vectors
pipeline = [dict(type='PackInputs')]
common = dict(type=dataset_type, data_root=data_root, num_classes=num_classes,
              feature_dim=feature_dim, pipeline=pipeline)

train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    dataset=dict(data_file='train_pairs.npz', **common),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    dataset=dict(data_file='val_pairs.npz', test_mode=True, **common),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='GlobalAveragePrecision', top_k=20)
test_dataloader = dict(
    batch_size=256,
    num_workers=0,
    dataset=dict(data_file='test_pairs.npz', test_mode=True, **common),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = val_evaluator
