# AFA + LBLS (Wang et al., "Attentive Feature Augmentation for Long-Tailed Visual
# Recognition"), ResNet-32, CIFAR-10-LT IR100, the shared 30-epoch CPU schedule (so it is
# comparable with configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py).
#
# AFANeck sits between the last two stages (after layer2: 32 channels, 16x16 maps for
# 32x32 images); real enhanced + generated features go through layer3, GAP and AFAClsHead.
# LBLS: L = L_ori for epochs < t, L_ori + lambda * L_all from t on; the paper's t = 30 of 90
# epochs scales to t = 10 of 30 here. alpha = 4, gamma = 1, lambda = 2.
# Follow with afa-crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py (cRT, 10 epochs).
_base_ = [
    '../_base_/models/resnet32_cifar.py',
    '../_base_/datasets/cifar10_lt_ir100.py',
    '../_base_/schedules/cifar_lt_cpu.py',
    '../_base_/default_runtime.py',
]

lbls_start = 10  # t of Eq. 12 (epochs, 0-based)
lbls_lambda = 2.0  # lambda of Eq. 12

model = dict(
    type='LabelAwareClassifier',
    backbone=dict(_delete_=True, type='TimmSplitBackbone', model_name='resnet32_cifar'),
    neck=dict(
        _delete_=True,
        type='AFANeck',
        in_channels='auto',  # = the trunk's channels (32 after the second stage of resnet32_cifar)
        input_size=(32, 32),  # training image size: feat_size of the trunk map (16x16 here) is
        # derived from it by a dry forward, so another model_name needs no other edit
        qkv='linear',  # Algorithm 1: W_Q, W_K, W_V over the H*W axis; 'conv1x1' is size-free
        mask_axis='channel',  # softmax of Eq. 3 over channels; 'spatial' is the other reading
        alpha=4.0,
        gamma=1.0,
        generate=True,  # False: Table VI "w/o Gen"
        attention_addition=True,  # False: Table VII "w/o AttAdd"
        placement='before_last_stage'),
    head=dict(type='AFAClsHead', all_loss_weight=lbls_lambda))

custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='LBLSHook', start=lbls_start, weight=lbls_lambda, by_epoch=True),
]
