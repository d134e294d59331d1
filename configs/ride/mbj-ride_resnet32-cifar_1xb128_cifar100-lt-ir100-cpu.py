# MBJ + RIDE (4 experts), ResNet-32, CIFAR100-LT IR100: MBJ's two-phase recipe on RIDE. Load the
# converged `ride_resnet32-cifar_1xb128_cifar100-lt-ir100-cpu.py` model and fine-tune 10 epochs at a
# small lr with MBJ's feature memory: one RebalancedFIFOMemory per expert (5 * C slots, beta 1.5,
# eta 15), read by that expert's classifier with its LDAM-DRW loss (re-weighting stays on, as at the
# end of RIDE training). `mbj.sharing='shared'`: one memory of concatenated expert features.
_base_ = [
    '../_base_/models/ride_resnet32_cifar.py',
    '../_base_/datasets/cifar100_lt_ir100.py',
    '../_base_/schedules/finetune_10e_cpu.py',
    '../_base_/default_runtime.py',
]
model = dict(
    head=dict(
        num_classes=100,
        mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=1.5, size=5 * 100, seed=0),
                 eta=15.0, sharing='per_expert'),
    ))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='DRWHook', start_epoch=0),
    dict(type='MBJMemoryStatsHook', interval=50),
]
load_from = 'work_dirs/ride_resnet32-cifar_1xb128_cifar100-lt-ir100-cpu/epoch_30.pth'
