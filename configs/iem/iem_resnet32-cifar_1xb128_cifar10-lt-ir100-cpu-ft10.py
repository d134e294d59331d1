# IEM + RSA, ResNet-32, cifar10-lt-ir100, issue 18 screen: 10 epochs from the 30-epoch CE
# checkpoint (configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py) at a
# constant lr 0.01 -- the MBJ fine-tuning schedule, so
# configs/mbj/ce-ft_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py is its CE control. The IEM
# neck (RSA) starts from its initialisation, backbone and classifier from the CE model.
# The paper reading of the memories: Adam at a constant 1e-5 (HybridSGDAdam fixed_lr: the
# parameter schedulers do not scale it), writes all along, softmax[y] values. Switches: the
# -ft10-* configs (cifar10-lt-ir100), or --cfg-options (configs/iem/README.md, issue 18).
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
optim_wrapper = dict(
    optimizer=dict(lr=0.01),
    paramwise_cfg=dict(custom_keys={
        'head.global_memory': dict(adam=True, fixed_lr=1e-5, decay_mult=0.0),
        'head.local_memory': dict(adam=True, fixed_lr=1e-5, decay_mult=0.0),
    }))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=10)]
train_cfg = dict(max_epochs=10, val_interval=5)
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
