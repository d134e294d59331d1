# IEM + RSA, ResNet-32, CIFAR-10-LT IR100, CPU schedule -- the paper's training, with the
# inference reading chosen on the validation split (tools/benchmark/run.py arm
# `iem-paper@readings`, reading `keys+global-only`): the global memory read as a soft kNN over its stored
# keys (`inference_read='keys'`: each class's share of the similarity mass of its n nearest
# slots, values taken as 1) instead of averaging Eq. 1's per-class reads with the softmax.
# Training is unchanged (the memories do not reach the backbone), so a checkpoint of the
# paper config can be tested with this one:
#   python tools/test.py THIS_CONFIG work_dirs/<paper run>/epoch_30.pth
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(
    inference_read='keys',
    inference_weights=dict(classifier=0.0, global_memory=1.0, local_memory=0.0)))
