# Post-hoc logit adjustment (Menon et al., ICLR 2021, Eq. 9) of the CE model of
# ce_resnet32-cifar_1xb128_cifar100-lt-ir50.py: no training, predictions from logits - tau * log
# pi_c (ComposedClsHead's logit_adjustment; the CE checkpoint's head.fc loads into
# head.classifier). Choose tau on the validation split (benchmark arm logit-adjust-posthoc reads a
# grid), e.g. python tools/test.py <this config>
# work_dirs/ce_resnet32-cifar_1xb128_cifar100-lt-ir50/epoch_200.pth --cfg-options
# model.head.logit_adjustment.tau=<tau>.
_base_ = ['./ce_resnet32-cifar_1xb128_cifar100-lt-ir50.py']

model = dict(
    head=dict(
        _delete_=True,
        type='ComposedClsHead',
        num_classes=100,
        in_channels='auto',
        classifier=dict(type='LinearClsHead', loss=dict(type='CrossEntropyLoss'), topk=(1, )),
        logit_adjustment=dict(tau=1.0)))
load_from = 'work_dirs/ce_resnet32-cifar_1xb128_cifar100-lt-ir50/epoch_200.pth'
