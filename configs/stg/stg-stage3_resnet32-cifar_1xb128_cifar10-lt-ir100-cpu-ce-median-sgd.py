# STG stage 3, the recommended CPU reading (issue 19): stage 1 = the plain CE model, the
# median head/tail split in stages 2 and 3, lambda 0.5, and the package's SGD cRT schedule, so
# that its cRT arm (model.head.augment='none') is the package's cRT on the same features.
# Why each choice: configs/stg/README.md, "Measured, round 2".
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-sgd.py']

head_threshold = 'median'
model = dict(predecessor='STG stage 2 (stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ce-median.py)',
             head=dict(head_threshold=head_threshold, lam=0.5))
load_from = 'work_dirs/stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ce-median/epoch_10.pth'
