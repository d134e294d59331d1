# RIDE, 4 experts (Wang et al., ICLR 2021), ResNet-32, CIFAR100-LT IR50, RIDE's 200-epoch schedule,
# re-weighting from epoch 160. LDAM-DRW per expert + distribution-aware diversity loss; all experts
# at test time (the router is trained afterwards by a ride-ea config).
_base_ = [
    '../_base_/models/ride_resnet32_cifar.py',
    '../_base_/datasets/cifar100_lt_ir50.py',
    '../_base_/schedules/ride_cifar_200e.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=100))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=160),
]
