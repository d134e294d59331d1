# Balanced Softmax (Ren et al., NeurIPS 2020), ResNeXt-50, ImageNet-LT, Kang et al.'s 90-epoch
# schedule: the CE recipe of ce_resnext50_8xb64_imagenet-lt.py with the loss on logits + log n_c
# (counts from ClassCountsHook); prediction is the plain argmax of the logits. Any timm backbone:
# set model.backbone.model_name.
_base_ = ['./ce_resnext50_8xb64_imagenet-lt.py']

model = dict(head=dict(loss=dict(_delete_=True, type='BalancedSoftmaxLoss')))
