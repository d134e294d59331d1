# Ablation (Table VII, "w/o AttAdd"): X_enh = X; AFANeck parameters are unused before t.
_base_ = ['./afa_resnext50_1xb128_cifar100-lt-ir100.py']

model = dict(neck=dict(attention_addition=False))
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
