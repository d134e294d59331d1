# MBJ-F, frozen backbone during the memory phase, global memory of 50 * C slots, eta 5:
# the best reading on the validation split of the frozen-feature probe
# (tools/benchmark/run.py --mbj-probe, formerly bench_mbj_accuracy.py --probe; CIFAR-10-LT
# IR100, 3 seeds); benchmark arm `mbj`.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(
    type='DecoupledClassifier',
    reinit_head=False,
    head=dict(eta=5.0, memory=dict(size=50 * 10)))
