# IEM, ResNet-32, FashionMNIST-LT IR100, CPU schedule -- the reading chosen on the validation
# split (tools/benchmark/run.py arm `iem`: `no-rsa` trained, reading `keys+global-only`, level
# on validation with reading `keys`): Table 5's "w/o RSA" training (average pooling instead of
# RSA), and at inference the global memory read as a soft kNN over its stored keys
# (`inference_read='keys'`), without the classifier or the local memory. Training is not
# changed by the inference settings; see the CIFAR-10-LT -no-rsa-knn config.
_base_ = ['./iem_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']
model = dict(
    neck=dict(attention=False),
    head=dict(inference_read='keys',
              inference_weights=dict(classifier=0.0, global_memory=1.0, local_memory=0.0)))
