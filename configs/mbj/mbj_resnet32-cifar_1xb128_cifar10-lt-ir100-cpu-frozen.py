# MBJ-F with the backbone frozen during the memory phase (no gradients, BatchNorm in eval):
# only the classifier moves, as in classifier re-training; the features in memory then
# differ only through data augmentation (no feature jitter from weight updates).
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(type='DecoupledClassifier', reinit_head=False)
