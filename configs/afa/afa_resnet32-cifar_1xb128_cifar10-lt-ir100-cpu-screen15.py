# AFA + LBLS screen (issue 19), CIFAR-10-LT IR100: the paper reading of afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py on a 15-epoch
# schedule (the shared CPU schedule halved: 3 linear warm-up epochs, cosine to 0 at 15), LBLS
# t = 5 (the paper's 30 of 90 epochs, scaled). Screens compare readings of the open choices
# (the -screen15-* configs) with this one and with the CE control -screen15-ce; finalists are
# re-run on the full 30-epoch configs. cRT: afa-crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15.py.
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

lbls_start = 5  # t of Eq. 12
lbls_lambda = 2.0
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=3,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=12, eta_min=0.0, by_epoch=True, begin=3, end=15,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=5)
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='LBLSHook', start=lbls_start, weight=lbls_lambda, by_epoch=True),
]
