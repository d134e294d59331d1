# cRT (Kang et al. 2019): the stage-1 CE model's backbone frozen (no gradients, BatchNorm in
# eval mode), classifier re-initialised and re-trained for 10 epochs with class-balanced
# sampling. Run `ce_resnet32-cifar_1xb128_cifar100-lt-ir50.py` first (or point load_from at its checkpoint).
_base_ = ['./ce_resnet32-cifar_1xb128_cifar100-lt-ir50.py', '../_base_/schedules/stage2_10e.py']

model = dict(type='DecoupledClassifier', reinit_head=True)
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_cifar100-lt-ir50/epoch_200.pth'
