# Issue 18 IEM screen: the -ft10 run with the memory Adam lr held at 1e-3 (at 1e-5 the
# values barely move in 10 epochs: the memory only stores write-time confidences).
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ft10.py']
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'head.global_memory': dict(adam=True, fixed_lr=1e-3, decay_mult=0.0),
    'head.local_memory': dict(adam=True, fixed_lr=1e-3, decay_mult=0.0),
}))
