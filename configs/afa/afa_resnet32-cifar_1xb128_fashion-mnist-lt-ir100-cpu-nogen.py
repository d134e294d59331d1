# Ablation (Table VI, "w/o Gen") on FashionMNIST-LT: decomposition + attention addition, no
# feature generation; trained with L_ori only (L_all would only repeat L_ori on the real
# features).
_base_ = ['./afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

model = dict(neck=dict(generate=False), head=dict(all_loss_weight=0.0))
custom_hooks = [dict(type='ClassCountsHook')]
