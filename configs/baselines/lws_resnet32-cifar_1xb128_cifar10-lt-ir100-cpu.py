# LWS (Kang et al. 2019): stage-1 backbone and classifier frozen; one learnable scale per
# class trained for 10 epochs with class-balanced sampling. Run `ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py` first.
_base_ = ['./ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '../_base_/schedules/stage2_10e.py']

model = dict(
    type='DecoupledClassifier',
    reinit_head=False,
    head=dict(type='LWSHead'))
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
