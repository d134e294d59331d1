# STG augmentation with an LWS classifier (stage-1 weights kept, per-class scales learned).
_base_ = ['./stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(head=dict(classifier='lws'))
