# Ablation (Table VII, "w/o AttAdd"): X_enh = X instead of X + X_class. Before LBLS starts,
# AFANeck's parameters get no gradient (only generated features use them), so DDP must look
# for unused parameters.
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(neck=dict(attention_addition=False))
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
