# cRT classifier + IEM memory read (ComposedClsHead), ResNet-32, CIFAR-10-LT IR100, CPU
# schedule: the cRT stage of configs/baselines/crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py
# (stage-1 CE model frozen, fresh linear classifier, 10 epochs, class-balanced sampling) with an
# EpisodicMemoryReader attached. The reader's memory is filled by training writes during those
# 10 epochs: each step stores the frozen backbone's features with the classifier's probability
# of the true class (IEM Eq. 3); a class keeps its latest `capacity` features. At inference the
# classifier's softmax is averaged with the memory read (IEM Eq. 1-2, `inference_read`:
# 'class' = Eq. 1, 'keys' = soft kNN over the stored keys). Choose `inference_weights` and
# `inference_read` on the validation split (test a checkpoint of this run with --cfg-options
# model.head.memory_reader.inference_read=keys etc.; the reads change no state).
# Run `configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py` first.
_base_ = ['../baselines/crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']

model = dict(
    type='DecoupledClassifier',
    reinit_head=True,
    head=dict(
        _delete_=True,
        type='ComposedClsHead',
        num_classes=10,
        in_channels='auto',
        classifier=dict(type='LinearClsHead', loss=dict(type='CrossEntropyLoss'),
                        topk=(1, )),
        memory_reader=dict(
            capacity=512,            # slots per class, as configs/iem
            num_neighbors=50,        # IEM's n
            delta=1e-3,
            write_value='prob',
            inference_read='class',
            inference_weights=dict(classifier=0.5, memory=0.5)),
    ))
