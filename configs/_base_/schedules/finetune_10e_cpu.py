# Fine-tuning from a converged stage-1 checkpoint (MBJ's second phase and its CE control):
# 10 epochs at a constant small lr 0.01 (batch 128), momentum 0.9, weight decay 2e-4.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=2e-4))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=10)]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
