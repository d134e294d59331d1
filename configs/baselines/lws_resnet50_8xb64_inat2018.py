# LWS: frozen stage-1 model, one learnable scale per class, 10 epochs class-balanced.
_base_ = ['./crt_resnet50_8xb64_inat2018.py']

model = dict(reinit_head=False, head=dict(type='LWSHead'))
