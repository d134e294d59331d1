# IEM + RSA (Zhu & Yang, CVPR 2020) on the LDAM ResNet-32 (timm `resnet32_cifar`).
# TIMMBackbone with features_only=False (its default) resets the timm classifier with
# global_pool='', so the backbone returns the final 8x8x64 map that RSANeck needs
# (features_only=True works too: RSANeck takes the last map). Any timm CNN works by
# changing `model_name` only (in_channels='auto' is read off the backbone).
_base_ = ['../../_base_/models/resnet32_cifar.py']

model = dict(
    backbone=dict(type='TIMMBackbone', model_name='resnet32_cifar', features_only=False),
    neck=dict(_delete_=True, type='RSANeck', in_channels='auto', h_max=2, w_max=2),
    head=dict(
        _delete_=True,
        type='IEMHead',
        num_classes=10,
        in_channels='auto',
        global_capacity=512,         # slots per class; C=100: 2 x 13 MiB (+2 x 26 MiB Adam)
        local_capacity=512,
        num_neighbors=50,            # paper
        delta=1e-3,
        gamma=0.99,                  # paper, as printed
        warmup_iters=100,            # ~1 epoch of CIFAR-10-LT IR100 at batch 128
        warmup_value='prob',
        memory_loss_to_backbone=False,
        write_after_warmup=True,
        region_reduce='mean',
        local_regions=16,            # of 225 regions (8x8 map, up to 2x2); None = all
        inference_weights=dict(classifier=0.5, global_memory=0.25, local_memory=0.25),
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
    ))
