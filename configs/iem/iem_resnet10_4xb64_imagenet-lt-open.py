# ImageNet-LT-open (OLTR open-set protocol, Liu et al. 2019; IEM Table 4 open-set columns):
# trains exactly as iem_resnet10_4xb64_imagenet-lt.py;
# the test set is the ImageNet-LT test list plus
# ImageNet_LT_open.txt (images of ImageNet-2010 classes outside ImageNet-2012, label -1 "unknown").
# Test a checkpoint of the closed-set run:  python tools/test.py THIS_CONFIG CHECKPOINT
# Rejection: softmax maximum of the final scores below OLTR's fixed open_threshold 0.1 (OLTR
# releases no open validation list). To choose the threshold on validation instead, give
# val_dataloader.dataset an open_ann_file of held-out unseen-class images (disjoint from
# ImageNet_LT_open.txt) with val_evaluator OpenSetShotAccuracy(select_threshold=True,
# threshold_out='open_threshold.json') and here threshold_file='open_threshold.json'.
_base_ = ['./iem_resnet10_4xb64_imagenet-lt.py']

test_dataloader = dict(dataset=dict(open_ann_file='ImageNet_LT_open.txt'))
test_evaluator = dict(_delete_=True, type='OpenSetShotAccuracy', threshold=0.1)
