# RIDE (Wang et al., ICLR 2021) on an ImageNet-scale timm backbone: stem + stages 1-2 shared,
# 4 experts each owning stages 3-4, a cosine classifier per expert (s = 30), LDAM-DRW per
# expert plus the distribution-aware diversity loss. A config sets `model_name`, the expert
# width, `num_classes` and the diversity `reweight_factor`.
num_experts = 4
model = dict(
    type='RIDEClassifier',
    backbone=dict(type='MultiExpertBackbone', model_name='resnext50_32x4d', pretrained=False,
                  num_experts=num_experts, tail_stages=2, width_factor=0.75),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='RIDEHead',
        num_classes=1000,
        in_channels='auto',
        num_experts=num_experts,
        classifier='cosine',
        scale=30.0,
        loss=dict(type='LDAMLoss', max_margin=0.5, drw_beta=0.9999),
        diversity=dict(type='RIDEDiversityLoss', loss_weight=-0.2, base_temperature=1.0,
                       reweight_factor=0.02),
        topk=(1, 5),
    ))
