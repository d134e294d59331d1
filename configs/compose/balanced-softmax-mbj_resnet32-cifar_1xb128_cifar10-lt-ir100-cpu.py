# Balanced Softmax then MBJ's memory term (benchmark arm `balanced-softmax+mbj`), ResNet-32,
# CIFAR-10-LT IR100, CPU schedule: the Balanced Softmax model's backbone frozen and its classifier
# kept (MBJ's validation-chosen reading on CE, `frozen-size50C-eta5`: 50 * C memory slots, eta 5),
# fine-tuned 10 epochs at lr 0.01 with the batch loss still Balanced Softmax plus eta * the memory
# loss. Its control (arm `balanced-softmax-ft-frozen`): the same with
# model.head.memory_enabled=False. Run
# `configs/baselines/balanced-softmax_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py` first.
_base_ = ['../mbj/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(
    type='DecoupledClassifier',
    reinit_head=False,
    head=dict(loss=dict(_delete_=True, type='BalancedSoftmaxLoss'), eta=5.0,
              memory=dict(size=50 * 10)))
load_from = 'work_dirs/balanced-softmax_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
