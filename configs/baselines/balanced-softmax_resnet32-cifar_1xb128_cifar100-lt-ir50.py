# Balanced Softmax (Ren et al., NeurIPS 2020), ResNet-32, CIFAR-100-LT IR50, the papers' schedule:
# the CE recipe of ce_resnet32-cifar_1xb128_cifar100-lt-ir50.py with the loss on logits + log n_c
# (counts from ClassCountsHook); prediction is the plain argmax of the logits. Any timm backbone:
# set model.backbone.model_name.
_base_ = ['./ce_resnet32-cifar_1xb128_cifar100-lt-ir50.py']

model = dict(head=dict(loss=dict(_delete_=True, type='BalancedSoftmaxLoss')))
