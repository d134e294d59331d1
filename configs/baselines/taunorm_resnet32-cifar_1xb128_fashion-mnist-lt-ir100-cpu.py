# tau-normalisation on FashionMNIST-LT: choose tau on the validation split with
#   python tools/tau_norm_search.py <this config> work_dirs/ce_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu/epoch_30.pth
_base_ = ['./ce_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

model = dict(type='DecoupledClassifier', reinit_head=False,
             head=dict(type='TauNormHead', tau=1.0))
