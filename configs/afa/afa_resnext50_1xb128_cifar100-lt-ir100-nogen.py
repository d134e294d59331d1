# Ablation (Table VI, "w/o Gen"): no feature generation, trained with L_ori only.
_base_ = ['./afa_resnext50_1xb128_cifar100-lt-ir100.py']

model = dict(neck=dict(generate=False), head=dict(all_loss_weight=0.0))
custom_hooks = [dict(type='ClassCountsHook')]
