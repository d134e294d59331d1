# cRT classifier + IEM memory read on the paper schedule's stage 1 (200-epoch CE, or any
# stage 1 through load_from, e.g. LDAM-DRW). The cRT stage itself is the same 10 epochs on
# both schedules (configs/baselines/crt_*-ir100.py and *-ir100-cpu.py differ only in
# load_from), so this config is the CPU one pointed at the paper checkpoint.
_base_ = ['./crt-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir100/epoch_200.pth'
