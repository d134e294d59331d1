# IEM + RSA, ResNet-32, CIFAR-10-LT IR100, CPU schedule --
# open choice: memory Adam lr 1e-3 instead of 1e-5 (at 1e-5 the 30-epoch CPU
# schedule moves values by at most ~0.03; the memory then only stores confidences).
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'head.global_memory': dict(adam=True, lr_mult=1e-2, decay_mult=0.0),
    'head.local_memory': dict(adam=True, lr_mult=1e-2, decay_mult=0.0),
}))
