# Logit-adjusted loss (Menon et al., ICLR 2021, Eq. 10), ResNeXt-50, ImageNet-LT, Kang et al.'s
# 90-epoch schedule: the CE recipe of ce_resnext50_8xb64_imagenet-lt.py with CE on logits + tau *
# log pi_c (tau = 1, the paper's choice; tau = 1 equals Balanced Softmax). Prediction: the plain
# argmax of the logits.
_base_ = ['./ce_resnext50_8xb64_imagenet-lt.py']

model = dict(head=dict(loss=dict(_delete_=True, type='LogitAdjustedLoss', tau=1.0)))
