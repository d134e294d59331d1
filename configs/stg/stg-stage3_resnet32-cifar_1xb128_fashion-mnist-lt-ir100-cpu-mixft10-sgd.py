# SGD stage 3 (see stg-stage3_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-sgd.py) on the mixup fine-tuned chain.
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-sgd.py']

model = dict(predecessor='STG stage 2 (stg-stage2_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-mixft10.py)')
load_from = 'work_dirs/stg-stage2_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-mixft10/epoch_10.pth'
