# cRT on FashionMNIST-LT IR100 (frozen stage-1 backbone, class-balanced re-training, 10 epochs).
_base_ = ['./ce_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py',
          '../_base_/schedules/stage2_10e.py']

model = dict(type='DecoupledClassifier', reinit_head=True)
train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True))
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu/epoch_30.pth'
