# CIFAR-10-LT, imbalance ratio 50 (LDAM protocol).
_base_ = './cifar10_lt_ir100.py'
imb_factor = 50
train_dataloader = dict(dataset=dict(imb_factor=imb_factor))
val_dataloader = dict(dataset=dict(imb_factor=imb_factor))
test_dataloader = dict(dataset=dict(imb_factor=imb_factor))
