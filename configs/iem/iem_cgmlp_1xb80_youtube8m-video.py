# IEM in vector mode on YouTube-8M video-level features (paper Sec. 4.3.2, Table 3: global
# memory only, no RSA -- the features have no spatial map). Backbone: a context-gated MLP with
# 2048 hidden units (the paper's NetVLAD runs on frame-level features, which this package
# does not read; its hidden size 2048 is kept). Paper hyper-parameters: batch 80, lr 2e-4,
# exponential decay 0.8 (YouTube-8M starter code: every 4M examples = 50,000 steps of 80),
# Adam (the starter code's optimizer); memories: Adam lr 1e-5, n = 50, gamma 0.99. The epoch
# count is not given in the paper (5 here). Memory: 3862 classes x 64 slots x 2048 dims =
# 1.9 GiB of keys (x3 with Adam moments); the paper's 50,000 slots do not fit.
_base_ = [
    '../_base_/datasets/youtube8m_video.py',
    './_base_/iem_runtime.py',
]
model = dict(
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='ContextGatedMLP', in_channels={{_base_.feature_dim}},
                  hidden_channels=2048, dropout=0.5),
    head=dict(
        type='IEMVectorHead',
        num_classes={{_base_.num_classes}},
        in_channels=2048,
        global_capacity=64,
        num_neighbors=50,
        gamma=0.99,
        warmup_iters=1000,
        classifier_weight=0.5,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)))
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=2e-4, weight_decay=0.0),
    paramwise_cfg=dict(custom_keys={
        'head.global_memory': dict(lr_mult=0.05, decay_mult=0.0)}))   # 0.05 x 2e-4 = 1e-5
param_scheduler = [dict(type='ExponentialLR', gamma=0.8 ** (1 / 50000), by_epoch=False)]
train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=1)
val_cfg = dict()
test_cfg = dict()
