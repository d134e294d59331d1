# Baseline for IEM's Table 3 on YouTube-8M video-level features: the same context-gated MLP
# and schedule as ../iem/iem_cgmlp_1xb80_youtube8m-video.py with a plain multi-label linear
# classifier (sigmoid + binary cross-entropy), no memory.
_base_ = [
    '../_base_/datasets/youtube8m_video.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='ContextGatedMLP', in_channels={{_base_.feature_dim}},
                  hidden_channels=2048, dropout=0.5),
    head=dict(type='MultiLabelLinearClsHead', num_classes={{_base_.num_classes}},
              in_channels=2048,
              loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)))
optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-4))
param_scheduler = [dict(type='ExponentialLR', gamma=0.8 ** (1 / 50000), by_epoch=False)]
train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=1)
val_cfg = dict()
test_cfg = dict()
