# LDAM-DRW classifier kept + IEM memory read (ComposedClsHead), ResNet-32, CIFAR-10-LT IR100,
# after the paper-schedule (200-epoch) LDAM-DRW model. Re-training a linear classifier on
# LDAM-DRW features (cRT) loses LDAM-DRW's cosine / re-weighted classifier, so here nothing is re-trained: the whole LDAM-DRW model is loaded
# (`reinit_head=False`; its `NormedLinearClsHead` weights land in `head.classifier`), the
# backbone stays frozen and the lr is 0, and 2 epochs of class-balanced training steps only fill
# the EpisodicMemoryReader (512 features per class, written with the classifier's probability of
# the true class, IEM Eq. 3). At inference the classifier's softmax is averaged with the memory
# read (IEM Eq. 1-2); choose `inference_read` / `inference_weights` on the validation split
# (benchmark arm `ldam-drw+iem`; weights 1.0 / 0.0 reproduce LDAM-DRW exactly).
# Run `configs/baselines/ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100.py` first.
_base_ = ['./crt-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100.py']

model = dict(
    reinit_head=False,
    head=dict(classifier=dict(
        _delete_=True, type='NormedLinearClsHead', scale=30.0, topk=(1, ),
        loss=dict(type='LDAMLoss', max_margin=0.5, drw_beta=0.9999))))
optim_wrapper = dict(optimizer=dict(lr=0.0))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=2)]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
custom_hooks = [dict(type='ClassCountsHook'), dict(type='DRWHook', start_epoch=0)]
load_from = 'work_dirs/ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100/epoch_200.pth'
