# RIDE (4 experts) kept whole + IEM memory read, ResNet-32, CIFAR-10-LT IR100, after the paper-
# schedule (200-epoch) RIDE model. Like `ldam-drw-iem-read_*`: nothing is re-trained (the whole
# RIDE model is loaded, backbone frozen, lr 0); 2 epochs of class-balanced training steps only
# fill the head's EpisodicMemoryReader (512 slots per class; keys = the 4 experts' normalised
# features concatenated, values = the ensemble's probability of the true class, IEM Eq. 3). At
# inference the ensemble's softmax is averaged with the memory read (IEM Eq. 1-2); choose
# `inference_read` / `inference_weights` on the validation split (benchmark arm `ride+iem`;
# weights 1.0 / 0.0 reproduce RIDE exactly).
# Run `configs/ride/ride_resnet32-cifar_1xb128_cifar10-lt-ir100.py` first.
_base_ = ['../ride/ride_resnet32-cifar_1xb128_cifar10-lt-ir100.py']

model = dict(
    type='DecoupledClassifier',
    reinit_head=False,
    head=dict(memory_reader=dict(
        capacity=512,            # slots per class, as configs/iem
        num_neighbors=50,        # IEM's n
        delta=1e-3,
        write_value='prob',
        inference_read='class',
        inference_weights=dict(classifier=0.5, memory=0.5))))
optim_wrapper = dict(_delete_=True, optimizer=dict(type='SGD', lr=0.0, momentum=0.9,
                                                   weight_decay=0.0))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=2)]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
custom_hooks = [dict(type='ClassCountsHook'), dict(type='DRWHook', start_epoch=0)]
auto_scale_lr = dict(base_batch_size=128)
load_from = 'work_dirs/ride_resnet32-cifar_1xb128_cifar10-lt-ir100/epoch_200.pth'
