# IEM, ResNet-32, CIFAR-10-LT IR100, CPU schedule -- the reading chosen on the validation
# split (tools/benchmark/run.py arm `iem`: `no-rsa` trained, reading `keys+global-only`):
# Table 5's "w/o RSA" training, and at inference the global memory read as a soft kNN over
# its stored keys (`inference_read='keys'`), without the classifier or the local memory.
# Training is that of the -no-rsa config, so its checkpoint tests with this one:
#   python tools/test.py THIS_CONFIG work_dirs/<no-rsa run>/epoch_30.pth
# The local memory is unused by this reading; `use_local_memory=False` should train the same
# backbone and global memory at lower cost (no memory gradient reaches the backbone: the
# -no-rsa model's classifier alone scores exactly the CE baseline of the same seed).
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-no-rsa.py']
model = dict(head=dict(
    inference_read='keys',
    inference_weights=dict(classifier=0.0, global_memory=1.0, local_memory=0.0)))
