# STG stage 1, screen (issue 19): the paper's mixup stage 1 reached cheaply, by 10 epochs of
# mixup (alpha 1.0) fine-tuning from the 30-epoch CE checkpoint of
# configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py (CIFAR-10-LT IR100), at the package's fine-tuning schedule
# (configs/_base_/schedules/finetune_10e_cpu.py: SGD lr 0.01 constant, momentum 0.9, weight
# decay 2e-4; the CE run ends its cosine at lr 0, so a restart at 0.1 would undo it).
# Next: stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-mixft10.py (STG) and stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-mixft10-noaug.py after it (cRT
# control in the same pipeline), or configs/baselines/crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py with
# load_from=<this run's epoch_10.pth> (the package's SGD cRT).
_base_ = ['./stg-stage1_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=2e-4))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=10)]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
