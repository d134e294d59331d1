# Balanced Softmax classifier kept + IEM memory read (ComposedClsHead), ResNet-32, CIFAR-10-LT
# IR100, after the paper-schedule Balanced Softmax model. As ldam-drw-iem-read_*.py: the whole
# stage-1 model is loaded (`reinit_head=False`; its LinearClsHead, Balanced Softmax loss and class
# counts included, lands in `head.classifier`), the backbone stays frozen and the lr is 0, and 2
# epochs of class-balanced training steps only fill the EpisodicMemoryReader. At inference the
# classifier's softmax is averaged with the memory read (IEM Eq. 1-2); choose `inference_read` /
# `inference_weights` on the validation split (benchmark arm `balanced-softmax+iem`; weights 1.0 /
# 0.0 reproduce Balanced Softmax exactly, its control). Run
# `configs/baselines/balanced-softmax_resnet32-cifar_1xb128_cifar10-lt-ir100.py` first.
_base_ = ['./crt-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100.py']

model = dict(
    reinit_head=False,
    head=dict(classifier=dict(_delete_=True, type='LinearClsHead', topk=(1, ),
                              loss=dict(type='BalancedSoftmaxLoss'))))
optim_wrapper = dict(optimizer=dict(lr=0.0))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=2)]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
custom_hooks = [dict(type='ClassCountsHook')]
load_from = 'work_dirs/balanced-softmax_resnet32-cifar_1xb128_cifar10-lt-ir100/epoch_200.pth'
