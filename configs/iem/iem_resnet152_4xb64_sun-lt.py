# IEM + RSA on SUN-LT (paper Table 1; Sec. 4.2: ResNet-152, initial lr 0.01, as Places-LT):
# everything as iem_resnet152_4xb64_places-lt.py (ImageNet-pretrained ResNet-152, 30 epochs,
# lr /10 every 10, memories Adam at a constant 1e-5), on the 397 SUN classes. SUN-LT is read
# with the Places-LT list reader (`<image path> <label>` lines): `data_root` holds the
# SUN-LT list files (the names below; set `ann_file` to your copy's) and the SUN397 images
# they name. The standard-size check of Places-LT does not apply to a given `ann_file`.
# 397 classes x 128 slots x 2048 dims = 397 MiB per memory (0.78 GiB, 2.3 GiB with Adam).
_base_ = ['./iem_resnet152_4xb64_places-lt.py']
data_root = 'data/sun397'
num_classes = 397
data_preprocessor = dict(num_classes=num_classes)
model = dict(head=dict(num_classes=num_classes))
train_dataloader = dict(dataset=dict(data_root=data_root, ann_file='SUN-LT_train.txt',
                                     num_classes=num_classes))
val_dataloader = dict(dataset=dict(data_root=data_root, ann_file='SUN-LT_val.txt',
                                   num_classes=num_classes))
test_dataloader = dict(dataset=dict(data_root=data_root, ann_file='SUN-LT_test.txt',
                                    num_classes=num_classes))
