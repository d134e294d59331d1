# IEM in vector mode (CPU): the baseline's MLP (../baselines/bce_mlp_1xb128_cifar10-lt-pairs-
# vec-cpu.py) with IEMVectorHead (global memory only, multi-label writes to every positive
# class, sigmoid + BCE, inference averaging sigmoid and memory reads), same schedule; memory
# Adam lr 1e-5 (lr_mult 0.01 of 1e-3).
_base_ = [
    '../_base_/datasets/cifar10_lt_pairs_vec.py',
    './_base_/iem_runtime.py',
]
model = dict(
    type='ImageClassifier',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='VectorMLP', in_channels={{_base_.feature_dim}},
                  hidden_channels=(256, )),
    head=dict(type='IEMVectorHead', num_classes={{_base_.num_classes}}, in_channels=256,
              global_capacity=512, num_neighbors=50, warmup_iters=100,
              classifier_weight=0.5))
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1e-3, weight_decay=0.0),
    paramwise_cfg=dict(custom_keys={
        'head.global_memory': dict(lr_mult=0.01, decay_mult=0.0)}))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=30, by_epoch=True,
                        convert_to_iter_based=True)]
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=5)
val_cfg = dict()
test_cfg = dict()
