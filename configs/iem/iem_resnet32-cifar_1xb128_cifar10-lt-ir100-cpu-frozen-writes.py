# IEM + RSA, ResNet-32, CIFAR-10-LT IR100, CPU schedule --
# open choice: writes stop after warm-up (the memory becomes a fixed set of slots
# trained by the MSE loss), memory lr 1e-3.
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(write_after_warmup=False, warmup_iters=500))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'head.global_memory': dict(adam=True, lr_mult=1e-2, decay_mult=0.0),
    'head.local_memory': dict(adam=True, lr_mult=1e-2, decay_mult=0.0),
}))
