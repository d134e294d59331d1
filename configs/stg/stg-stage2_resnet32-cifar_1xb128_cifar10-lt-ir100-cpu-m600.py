# Table 6: stage 2 with a dictionary of m = 600 features.
# Run stage 3 with --cfg-options load_from=work_dirs/stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-m600/epoch_10.pth
_base_ = ['./stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(head=dict(dictionary_size=600))
