# Ablation (Table VIII, "w/o LBLS"): L = L_ori + lambda * L_all with generation from the
# first epoch (no lay-back phase).
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

custom_hooks = [dict(type='ClassCountsHook')]
