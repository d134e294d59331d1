# MBJ-F with a cosine classifier (scale 16): memory and batch features compete by angle only.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(classifier='cosine', cosine_scale=16.0))
