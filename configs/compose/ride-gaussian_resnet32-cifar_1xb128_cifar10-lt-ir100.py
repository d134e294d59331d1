# RIDE + feature noise after the paper-schedule (200-epoch) RIDE model: as
# `ride-gaussian_*-cpu.py` (experts frozen, their classifiers fine-tuned with Gaussian noise, std
# 1.0, on the tail-class features of every expert) on the MBJ + RIDE fine-tuning schedule.
# Run `configs/ride/ride_resnet32-cifar_1xb128_cifar10-lt-ir100.py` first.
_base_ = ['../ride/mbj-ride_resnet32-cifar_1xb128_cifar10-lt-ir100.py']

model = dict(
    type='DecoupledClassifier',
    reinit_head=False,
    head=dict(mbj=None,
              generator=dict(augment='gaussian', noise_std=1.0, head_threshold='median')))
custom_hooks = [dict(type='ClassCountsHook'), dict(type='DRWHook', start_epoch=0)]
