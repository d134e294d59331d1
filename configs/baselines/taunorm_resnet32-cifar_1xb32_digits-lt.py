# tau-normalisation on DigitsLT: post-hoc w_c / ||w_c||^tau on the stage-1 classifier.
#   python tools/tau_norm_search.py <this config> work_dirs/ce_resnet32-cifar_1xb32_digits-lt/epoch_30.pth
_base_ = ['./ce_resnet32-cifar_1xb32_digits-lt.py']

model = dict(type='DecoupledClassifier', reinit_head=False,
             head=dict(type='TauNormHead', tau=1.0))
