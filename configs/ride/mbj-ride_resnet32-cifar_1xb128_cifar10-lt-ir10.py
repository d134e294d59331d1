# MBJ + RIDE (4 experts), ResNet-32, CIFAR10-LT IR10: the IR100 recipe (see its header) on the
# IR10 profile, fine-tuning the converged `ride_resnet32-cifar_1xb128_cifar10-lt-ir10.py` model.
_base_ = './mbj-ride_resnet32-cifar_1xb128_cifar10-lt-ir100.py'
imb_factor = 10
train_dataloader = dict(dataset=dict(imb_factor=imb_factor))
val_dataloader = dict(dataset=dict(imb_factor=imb_factor))
test_dataloader = dict(dataset=dict(imb_factor=imb_factor))
load_from = 'work_dirs/ride_resnet32-cifar_1xb128_cifar10-lt-ir10/epoch_200.pth'
