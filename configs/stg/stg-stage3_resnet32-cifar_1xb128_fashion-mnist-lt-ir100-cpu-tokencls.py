# STG stage 3, token choice by the stage-1 classifier (issue 19): each tail sample borrows
# the token of the head class its stage-1 classifier scores highest, instead of the head
# class whose mean feature is most similar by cosine (the default, token_source='prototype').
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

model = dict(head=dict(token_source='classifier'))
