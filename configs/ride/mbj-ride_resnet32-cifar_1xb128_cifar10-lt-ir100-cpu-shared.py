# MBJ + RIDE with ONE shared memory (slots hold the concatenated features of all experts, one
# admission draw) instead of one memory per expert.
_base_ = ['./mbj-ride_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(mbj=dict(sharing='shared')))
