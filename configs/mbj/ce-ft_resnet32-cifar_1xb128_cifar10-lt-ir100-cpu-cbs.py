# Control of iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ft10-memlr1e-3-cbs.py (issue 18):
# 10 epochs of CE fine-tuning from the CE checkpoint at lr 0.01, class-balanced sampling, no
# memory. It measures how much of IEM's gain with the class-aware sampler is the sampler's.
_base_ = ['./ce-ft_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
