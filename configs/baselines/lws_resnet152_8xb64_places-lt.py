# LWS: frozen stage-1 model, one learnable scale per class, 10 epochs class-balanced.
_base_ = ['./crt_resnet152_8xb64_places-lt.py']

model = dict(reinit_head=False, head=dict(type='LWSHead'))
