# Screen control (issue 19), FashionMNIST-LT IR100: plain CE on the 15-epoch screen schedule, in the AFA
# pipeline with the neck switched off (no generation, X_enh = X, L_ori only): the model is
# ResNet-32 + linear classifier trained with CE (the neck's parameters get no gradient).
_base_ = ['./afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15.py']

model = dict(neck=dict(generate=False, attention_addition=False),
             head=dict(all_loss_weight=0.0))
custom_hooks = [dict(type='ClassCountsHook')]
