# RIDE (Wang et al., ICLR 2021) on LDAM's ResNet-32 (timm `resnet32_cifar`): stem + first stage
# shared, 4 experts each with their own copy of stages 2-3 at 0.75 width (RIDE's
# `reduce_dimension`: 24 / 48 channels), a cosine classifier per expert (s = 30), LDAM-DRW per
# expert plus the distribution-aware diversity loss (factor -0.2, base temperature 1,
# reweight_factor 0.05). 4 experts as in the MBJ tables ("RIDE (4 experts)").
# Any timm CNN works by changing `model_name` (width_factor is mapped for resnet*_cifar, timm
# ResNet/ResNeXt and ConvNeXt; set it to 1.0 for other families).
num_experts = 4
model = dict(
    type='RIDEClassifier',
    backbone=dict(type='MultiExpertBackbone', model_name='resnet32_cifar',
                  num_experts=num_experts, tail_stages=2, width_factor=0.75),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='RIDEHead',
        num_classes=10,
        in_channels='auto',
        num_experts=num_experts,
        classifier='cosine',
        scale=30.0,
        loss=dict(type='LDAMLoss', max_margin=0.5, drw_beta=0.9999),
        diversity=dict(type='RIDEDiversityLoss', loss_weight=-0.2, base_temperature=1.0,
                       reweight_factor=0.05),
        topk=(1, ),
    ))
