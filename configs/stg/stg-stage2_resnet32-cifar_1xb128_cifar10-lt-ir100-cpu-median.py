# STG stage 2 with the median head/tail split (issue 19): head = classes above the median
# training count, tail = the others (CIFAR-10-LT IR100: 5 / 5 classes; head_threshold=100
# augments only 2 of 10). Stage 3 must use the same split: stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-median.py.
_base_ = ['./stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

head_threshold = 'median'
model = dict(head=dict(head_threshold=head_threshold))
