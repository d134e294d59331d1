# CIFAR-100-LT, imbalance ratio 10 (LDAM protocol).
_base_ = './cifar100_lt_ir100.py'
imb_factor = 10
train_dataloader = dict(dataset=dict(imb_factor=imb_factor))
val_dataloader = dict(dataset=dict(imb_factor=imb_factor))
test_dataloader = dict(dataset=dict(imb_factor=imb_factor))
