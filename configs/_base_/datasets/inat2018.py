# iNaturalist 2018: 437.5K training images, 8142 classes. The protocol reports on the
# official val list (split='test' reads it too). `data_root` holds iNaturalist18_{train,val}.txt.
# Pipelines and batch size come from MMPretrain's ImageNet base (64 per GPU, 8 GPUs = 512).
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs64.py'

dataset_type = 'INaturalist2018'
data_root = 'data/inat2018'
data_preprocessor = dict(num_classes=8142)

train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='train'))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='val'))
val_evaluator = dict(type='ShotAccuracy', topk=(1, 5))
test_dataloader = dict(
    batch_size=64,
    num_workers=5,
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline={{_base_.test_pipeline}}),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_evaluator = val_evaluator
