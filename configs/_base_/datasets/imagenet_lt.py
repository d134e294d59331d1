# ImageNet-LT (Liu et al. 2019): 115.8K training images, 1000 classes (1280..5 per class);
# 20-per-class val list for model selection, 50-per-class test list for the report.
# `data_root` holds ImageNet_LT_{train,val,test}.txt and the ImageNet images they name.
# Pipelines and batch size come from MMPretrain's ImageNet base (64 per GPU, 8 GPUs = 512).
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs64.py'

dataset_type = 'ImageNetLT'
data_root = 'data/imagenet'
data_preprocessor = dict(num_classes=1000)

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
