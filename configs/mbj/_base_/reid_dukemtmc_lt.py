# DukeMTMC-reID in its original directory layout (bounding_box_train / query / bounding_box_test)
# under `data_root`: the Market-1501 protocol of `reid_market1501_lt.py` (long-tailed training
# edition, query vs gallery mAP / CMC with same-id same-camera excluded) on Duke's 702
# training identities.
_base_ = ['./reid_market1501_lt.py']

data_root = 'data/dukemtmc-reid'
num_classes = 702  # training identities (all kept in the long-tailed edition)

data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
