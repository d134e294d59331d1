# tau-normalisation (Kang et al. 2019): post-hoc w_c / ||w_c||^tau on the stage-1 classifier,
# no training. Choose tau on the validation split:
#   python tools/tau_norm_search.py <this config> <stage-1 checkpoint>
# then test with --cfg-options model.head.tau=<best>.
_base_ = ['./ce_resnet32-cifar_1xb128_cifar10-lt-ir10.py']

model = dict(type='DecoupledClassifier', reinit_head=False,
             head=dict(type='TauNormHead', tau=1.0))
