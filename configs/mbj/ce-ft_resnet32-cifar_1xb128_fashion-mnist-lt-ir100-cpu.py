# Control for MBJ: CE fine-tuning from the same 30-epoch CE checkpoint, same 10 epochs, same
# lr 0.01, same head class with the memory switched off (an MBJClsHead with
# memory_enabled=False computes exactly the CE loss of LinearClsHead; same parameter names).
_base_ = ['./mbj_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py']

model = dict(head=dict(memory_enabled=False))
custom_hooks = [dict(type='ClassCountsHook')]
