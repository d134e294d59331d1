# Screen control (issue 19), CIFAR-10-LT IR100: AFA without generation (Table VI "w/o Gen", L_ori
# only) on the 15-epoch screen schedule.
_base_ = ['./afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-screen15.py']

model = dict(neck=dict(generate=False), head=dict(all_loss_weight=0.0))
custom_hooks = [dict(type='ClassCountsHook')]
