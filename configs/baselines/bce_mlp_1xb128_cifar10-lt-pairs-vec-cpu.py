# Vector baseline (CPU): a one-hidden-layer MLP + multi-label linear classifier (sigmoid, BCE)
# on the paired CIFAR-10-LT feature vectors (../_base_/datasets/cifar10_lt_pairs_vec.py),
# 30 epochs of Adam. Compare with ../iem/iem_mlp_1xb128_cifar10-lt-pairs-vec-cpu.py.
_base_ = [
    '../_base_/datasets/cifar10_lt_pairs_vec.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='VectorMLP', in_channels={{_base_.feature_dim}},
                  hidden_channels=(256, )),
    head=dict(type='MultiLabelLinearClsHead', num_classes={{_base_.num_classes}},
              in_channels=256,
              loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)))
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=30, by_epoch=True,
                        convert_to_iter_based=True)]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()
