# Ablation (Table VIII, "w/o LBLS"): L_ori + lambda * L_all with generation from epoch 0.
_base_ = ['./afa_resnext50_1xb128_cifar100-lt-ir100.py']

custom_hooks = [dict(type='ClassCountsHook')]
