# STG stage 3 with the package's SGD cRT schedule (issue 19): the cRT arm of this config
# (`model.head.augment=none`, or the -sgd-noaug config) trains exactly like
# configs/baselines/crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py (SGD lr 0.1, momentum 0.9, weight decay 2e-4, cosine to 0 over
# 10 epochs, class-balanced sampling, re-initialised classifier), so STG's gain is measured
# against a cRT that is not under-trained (Adam lr 1e-4 for 10 epochs under-trains at 100
# classes, see the issue). Only the optimiser and schedule differ from stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py.
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

optim_wrapper = dict(_delete_=True,
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4,
                                    nesterov=False))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
]
