# Places-LT (Liu et al. 2019): 62.5K training images, 365 classes (4980..5 per class).
# `data_root` holds Places_LT_{train,val,test}.txt and the Places-365 images they name.
# Pipelines and batch size come from MMPretrain's ImageNet base (64 per GPU, 8 GPUs = 512).
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs64.py'

dataset_type = 'PlacesLT'
data_root = 'data/places365'
data_preprocessor = dict(num_classes=365)

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
