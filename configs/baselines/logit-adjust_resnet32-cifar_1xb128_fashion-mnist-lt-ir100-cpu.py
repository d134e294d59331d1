# Logit-adjusted loss (Menon et al., ICLR 2021, Eq. 10), ResNet-32 (1 input channel),
# FashionMNIST-LT IR100, the 30-epoch CPU schedule: the CE recipe of
# ce_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py with CE on logits + tau * log pi_c (tau =
# 1, the paper's choice; tau = 1 equals Balanced Softmax). Prediction: the plain argmax of the
# logits.
_base_ = ['./ce_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

model = dict(head=dict(loss=dict(_delete_=True, type='LogitAdjustedLoss', tau=1.0)))
