# AFA neck + MBJ memory term (ComposedClsHead), ResNet-32, CIFAR-10-LT IR100, CPU schedule.
# The AFA + LBLS run of configs/afa/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py (AFANeck
# before the last stage, LBLS from epoch 10, 30 epochs) whose classifier, AFAClsHead, also gets
# MBJ's feature-memory term (MBJ Eq. 2: + eta * CE of the same classifier on a class-rebalanced
# memory of the real, enhanced features; generated features are not memorised). As in MBJ's
# single-run schedule the memory term is switched on late (MBJMemorySwitchHook, epoch 20),
# once the features have settled; 5 * C slots, beta 1.5, eta 15 (MBJ's defaults).
# Follow with configs/afa/afa-crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py (its
# load_from pointed at this run's checkpoint).
_base_ = ['../afa/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

lbls_start = 10
lbls_lambda = 2.0
memory_start_epoch = 20

model = dict(
    head=dict(
        _delete_=True,
        type='ComposedClsHead',
        num_classes=10,
        in_channels='auto',
        classifier=dict(type='AFAClsHead', all_loss_weight=lbls_lambda),
        memory_term=dict(
            memory=dict(type='RebalancedFIFOMemory', beta=1.5, size=5 * 10, seed=0),
            eta=15.0,
            memory_enabled=False),
    ))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='LBLSHook', start=lbls_start, weight=lbls_lambda, by_epoch=True),
    dict(type='MBJMemorySwitchHook', start_epoch=memory_start_epoch),
    dict(type='MBJMemoryStatsHook', interval=50),
]
