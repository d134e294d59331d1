# CIFAR-100-LT, imbalance ratio 100 (LDAM protocol): 10,847 images; 35/35/30 many/medium/few.
_base_ = './cifar10_lt_ir100.py'
dataset_type = 'CIFAR100LT'
data_root = 'data/cifar100'
data_preprocessor = dict(
    num_classes=100,
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418])
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_evaluator = dict(type='ShotAccuracy', topk=(1, 5))
test_evaluator = val_evaluator
