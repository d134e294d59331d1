# RIDE + feature noise (issue 14): the 30-epoch CPU RIDE model loaded whole, its 4 experts frozen,
# its 4 cosine classifiers fine-tuned 10 epochs (lr 0.01, cosine; the MBJ + RIDE fine-tuning
# schedule, LDAM-DRW loss with re-weighting on, diversity loss kept) while every tail-class
# sample's feature is replaced, per expert, by a Gaussian-noised copy (std 1.0, STG Table 7's
# control, which equals STG on CIFAR-10-LT over 3 seeds; tail = classes below the median count,
# STG's recommended split). Clean features for prediction. Its control is the same stage
# without noise (`generator=None`, benchmark arm `ride-ft-frozen`).
# Run `configs/ride/ride_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py` first.
_base_ = ['../ride/mbj-ride_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(
    type='DecoupledClassifier',
    reinit_head=False,
    head=dict(mbj=None,
              generator=dict(augment='gaussian', noise_std=1.0, head_threshold='median')))
custom_hooks = [dict(type='ClassCountsHook'), dict(type='DRWHook', start_epoch=0)]
