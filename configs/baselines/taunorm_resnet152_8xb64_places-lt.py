# tau-normalisation: post-hoc w_c / ||w_c||^tau on the stage-1 classifier; choose tau with
#   python tools/tau_norm_search.py <this config> work_dirs/ce_resnet152_8xb64_places-lt/epoch_90.pth
_base_ = ['./ce_resnet152_8xb64_places-lt.py']

model = dict(type='DecoupledClassifier', reinit_head=False,
             head=dict(type='TauNormHead', tau=1.0))
