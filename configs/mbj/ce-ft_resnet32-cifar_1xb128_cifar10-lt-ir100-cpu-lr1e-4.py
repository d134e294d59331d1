# Control of mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-4.py: CE fine-tuning with the
# same lr setting, the memory off.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-4.py']
model = dict(head=dict(memory_enabled=False))
custom_hooks = [dict(type='ClassCountsHook')]
