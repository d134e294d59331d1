# MBJ + RIDE with the memory phase at lr 1e-4: the one lr at which MBJ beat its fine-tuning
# control on CE (issue 18). Control: the benchmark arm `ride-ft-lr1e-4` (same run, no memory).
_base_ = ['./mbj-ride_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
optim_wrapper = dict(optimizer=dict(lr=0.0001))
