# Balanced Softmax then STG, stage 3 (benchmark arm `balanced-softmax+stg`): STG's recommended
# stage 3 (median split, lambda 0.5, SGD cRT schedule) with the stage-3 loss itself balanced: the
# re-initialised classifier is trained with the Balanced Softmax loss on instance-balanced batches
# (class-balanced sampling on top of a balanced loss would correct twice), tail features replaced
# by their STG augmentation. Its control (arm `balanced-softmax+stg-crt`): the same with
# model.head.augment='none'. Chain: Balanced Softmax -> balanced-softmax-stg-stage2_*-cpu.py ->
# this.
_base_ = ['../stg/stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ce-median-sgd.py']

model = dict(predecessor='STG stage 2 on Balanced Softmax (configs/compose/'
             'balanced-softmax-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py)',
             head=dict(loss=dict(type='BalancedSoftmaxLoss')))
train_dataloader = dict(sampler=dict(type='DefaultSampler', shuffle=True))
load_from = ('work_dirs/balanced-softmax-stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/'
             'epoch_10.pth')
