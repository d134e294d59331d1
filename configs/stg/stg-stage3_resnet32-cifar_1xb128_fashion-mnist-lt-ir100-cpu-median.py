# STG stage 3 with the median head/tail split (after stg-stage2_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-median.py).
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

head_threshold = 'median'
model = dict(predecessor='STG stage 2 (stg-stage2_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-median.py)',
             head=dict(head_threshold=head_threshold))
load_from = 'work_dirs/stg-stage2_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-median/epoch_10.pth'
