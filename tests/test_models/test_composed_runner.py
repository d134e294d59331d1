"""ComposedClsHead through mmengine's Runner: each pair of parts (classifier + memory term,
classifier + memory reader, memory term + memory reader, and the STG feature generator with
the classifier and with each memory part, in a decoupled stage after an STG stage 2) trains on
a toy long-tailed set and resumes exactly; two-process gloo DDP: gradients and memories equal
one process fed the global batch (with the generator, whose draws are keyed by rank: equal on
both ranks)."""
import logging
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401  (registration)
from tests.dist_utils import run_distributed
from tests.runner_utils import ToyLT, assert_resume_matches_uninterrupted

MEMORY = dict(type='RebalancedFIFOMemory', beta=1.5)
READER = dict(capacity=6, num_neighbors=3, inference_read='keys')
GENERATOR = dict(head_threshold=10, lam=1.0)
HEADS = {
    'linear+term': dict(classifier=dict(type='LinearClsHead'),
                        memory_term=dict(memory=MEMORY, eta=15.0, memory_enabled=False)),
    'cosine+reader': dict(classifier=dict(type='NormedLinearClsHead', scale=16.0,
                                          loss=dict(type='CrossEntropyLoss')),
                          memory_reader=READER),
    'lws+term+reader': dict(classifier=dict(type='LWSHead'),
                            memory_term=dict(memory=MEMORY, eta=15.0, memory_enabled=False),
                            memory_reader=READER),
    # STG stage 3 after a stage 2 on ToyLT (24 / 12 / 8 / 4 images: head classes 0-1)
    'linear+generator': dict(classifier=dict(type='LinearClsHead'), generator=GENERATOR),
    'generator+term': dict(classifier=dict(type='LinearClsHead'), generator=GENERATOR,
                           memory_term=dict(memory=MEMORY, eta=15.0, memory_enabled=False)),
    'cosine+generator+reader': dict(classifier=dict(type='NormedLinearClsHead', scale=16.0,
                                                    loss=dict(type='CrossEntropyLoss')),
                                    generator=GENERATOR, memory_reader=READER),
}


@MODELS.register_module(force=True)
class _ComposedTinyNet(nn.Module):
    """Conv-BN-ReLU toy backbone (test only)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU())

    def forward(self, x):
        return (self.body(x), )


def _runner(work_dir, name, max_epochs, head, model='ImageClassifier', load_from=None,
            resume=False, custom_hooks=(), **model_kw):
    return Runner(
        model=dict(type=model, backbone=dict(type='_ComposedTinyNet'),
                   neck=dict(type='GlobalAveragePooling'), head=head,
                   data_preprocessor=dict(type='ClsDataPreprocessor'), **model_kw),
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=dict(dataset=ToyLT(), batch_size=8, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True, seed=0)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                                          weight_decay=1e-4)),
        custom_hooks=[dict(type='ClassCountsHook'), *custom_hooks],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=3)),
        randomness=dict(seed=0),
        default_scope='mmpretrain',
        load_from=load_from,
        resume=resume,
        log_level=logging.WARNING,
    )


@pytest.fixture(scope='module')
def stg_stage2(tmp_path_factory):
    """Checkpoint of an STG stage 2 (generator trained 1 epoch) on the toy backbone."""
    torch.set_num_threads(1)
    work_dir = str(tmp_path_factory.mktemp('stg_stage2'))
    head = dict(type='STGGeneratorHead', num_classes=4, in_channels=8, dictionary_size=16,
                head_threshold=10, smooth_momentum=0.0)
    _runner(work_dir, 'stg2', 1, head, model='DecoupledClassifier', reinit_head=False).train()
    return osp.join(work_dir, 'epoch_1.pth')


def _runner_factory(parts, stage2=None):
    if 'generator' in parts:  # STG stage 3: a cRT model after STG stage 2
        def make(work_dir, name, max_epochs, load_from=None, resume=False):
            return _runner(work_dir, name, max_epochs,
                           dict(type='ComposedClsHead', num_classes=4, in_channels=8,
                                **HEADS[parts]),
                           model='DecoupledClassifier', reinit_head=True,
                           load_from=load_from or stage2, resume=resume,
                           custom_hooks=[dict(type='MBJMemorySwitchHook', start_epoch=1)])
        return make

    def make(work_dir, name, max_epochs, load_from=None, resume=False):
        return Runner(
            model=dict(type='ImageClassifier', backbone=dict(type='_ComposedTinyNet'),
                       neck=dict(type='GlobalAveragePooling'),
                       head=dict(type='ComposedClsHead', num_classes=4, in_channels=8,
                                 **HEADS[parts]),
                       data_preprocessor=dict(type='ClsDataPreprocessor')),
            work_dir=work_dir,
            experiment_name=name,
            train_dataloader=dict(dataset=ToyLT(), batch_size=8, num_workers=0,
                                  sampler=dict(type='DefaultSampler', shuffle=True, seed=0)),
            train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                                              weight_decay=1e-4)),
            custom_hooks=[dict(type='ClassCountsHook'),
                          dict(type='MBJMemorySwitchHook', start_epoch=1)],
            default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                               logger=dict(type='LoggerHook', interval=3)),
            randomness=dict(seed=0),
            default_scope='mmpretrain',
            load_from=load_from,
            resume=resume,
            log_level=logging.WARNING,
        )
    return make


@pytest.mark.parametrize('parts', list(HEADS))
def test_composed_resume_equals_uninterrupted(parts, tmp_path, request):
    torch.set_num_threads(1)
    stage2 = request.getfixturevalue('stg_stage2') if 'generator' in parts else None
    full, _ = assert_resume_matches_uninterrupted(_runner_factory(parts, stage2), tmp_path,
                                                 parts, stop_epoch=2, max_epochs=3)
    head = full.model.head
    if head.generator is not None:  # carried from stage 2, frozen; 3 epochs x 6 draws
        stage2_state = torch.load(stage2, map_location='cpu',
                                  weights_only=False)['state_dict']
        for key, value in head.generator.generator_net.state_dict().items():
            torch.testing.assert_close(value, stage2_state[f'head.generator.{key}'], rtol=0,
                                       atol=0, msg=key)
        assert int(head.generator.aug_step) == 18
        assert head.generator.class_counts.tolist() == ToyLT.class_counts
        trainable = {n for n, p in full.model.named_parameters() if p.requires_grad}
        assert trainable == {f'head.classifier.{n}' for n, _ in
                             head.classifier.named_parameters()}
    if head.memory_term is not None:  # on from epoch 1: 2 epochs x 6 iterations of writes
        bank = head.memory_term.memories[0]
        assert int(bank.step) == 12 and bank.fill_ratio() > 0
        assert bank.class_counts.tolist() == ToyLT.class_counts
    if head.memory_reader is not None:  # written every step: 12+ features of each class
        # a frozen backbone (after STG stage 2) gives the same real features every epoch:
        # class 3's 4 images are 4 keys (augmented copies would fill its 6 slots)
        full_3 = 4 if head.generator is not None else 6
        assert head.memory_reader.memory.num_valid().tolist() == [6, 6, 6, full_3]


def _head_steps(rank, world_size):
    import lt_plugins  # noqa: F401
    from mmengine import dist as mdist
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    head = MODELS.build(dict(
        type='ComposedClsHead', num_classes=4, in_channels=5,
        classifier=dict(type='LinearClsHead'),
        memory_term=dict(memory=dict(MEMORY, size=6, class_counts=[40, 20, 8, 2]), eta=15.0),
        memory_reader=dict(capacity=4, num_neighbors=2)))
    gen = torch.Generator().manual_seed(1)
    grads = []
    for _ in range(3):
        feats = torch.randn(8, 5, generator=gen)
        labels = torch.randint(0, 4, (8, ), generator=gen)
        part = slice(rank * 8 // world_size, (rank + 1) * 8 // world_size)
        head.zero_grad()
        losses = head.loss((feats[part], ),
                           [DataSample().set_gt_label(int(y)) for y in labels[part]])
        sum(losses.values()).backward()
        grad = head.classifier.fc.weight.grad.clone()
        if world_size > 1:  # what DDP does: average the gradients
            mdist.all_reduce(grad, op='mean')
        grads.append(grad)
    query = torch.randn(3, 5, generator=gen)
    scores = torch.stack([p.pred_score for p in head.predict((query, ))])
    return dict(grads=grads, scores=scores,
                state={k: v.clone() for k, v in head.state_dict().items()})


@pytest.mark.slow  # two spawned processes (~20 s of CPU)
def test_composed_ddp_gradients_and_memories_equal_single_process():
    r0, r1 = run_distributed(_head_steps)
    single = _head_steps(0, 1)
    for key in single['state']:
        torch.testing.assert_close(r0['state'][key], r1['state'][key], rtol=0, atol=0, msg=key)
        torch.testing.assert_close(r0['state'][key], single['state'][key], rtol=0, atol=0,
                                   msg=key)
    for g0, g1, g in zip(r0['grads'], r1['grads'], single['grads']):
        torch.testing.assert_close(g0, g1, rtol=0, atol=0)
        torch.testing.assert_close(g0, g)
    torch.testing.assert_close(r0['scores'], single['scores'])
    assert int(single['state']['memory_term.memories.0.valid'].sum()) > 0
    assert int(single['state']['memory_reader.memory.valid'].sum()) > 0


def _generator_head_steps(rank, world_size, augment='stg'):
    """Generator + memory term + memory reader on a linear classifier, 3 steps of a global
    batch of 8 split over the ranks (the generator's prototypes and training count set by
    hand, as a stage-2 checkpoint would)."""
    import lt_plugins  # noqa: F401
    from mmengine import dist as mdist
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    counts = [40, 20, 8, 2]
    head = MODELS.build(dict(
        type='ComposedClsHead', num_classes=4, in_channels=5,
        classifier=dict(type='LinearClsHead'),
        memory_term=dict(memory=dict(MEMORY, size=6, class_counts=counts), eta=15.0),
        memory_reader=dict(capacity=4, num_neighbors=2),
        generator=dict(class_counts=counts, head_threshold=10, seed=3, augment=augment)))
    net = head.generator.generator_net
    with torch.no_grad():
        net.proto_sum[:2] = torch.randn(2, 5, generator=torch.Generator().manual_seed(2))
        net.proto_count[:2] = 1
        net.trained_iters.fill_(1)
    gen = torch.Generator().manual_seed(1)
    grads = []
    for _ in range(3):
        feats = torch.randn(8, 5, generator=gen)
        labels = torch.tensor([0, 0, 1, 2, 0, 1, 3, 2])  # tails 2, 3 on both ranks
        part = slice(rank * 8 // world_size, (rank + 1) * 8 // world_size)
        head.zero_grad()
        losses = head.loss((feats[part], ),
                           [DataSample().set_gt_label(int(y)) for y in labels[part]])
        sum(losses.values()).backward()
        grad = head.classifier.fc.weight.grad.clone()
        if world_size > 1:  # what DDP does: average the gradients
            mdist.all_reduce(grad, op='mean')
        grads.append(grad)
    return dict(grads=grads, state={k: v.clone() for k, v in head.state_dict().items()})


@pytest.mark.slow  # two spawned processes (~20 s of CPU)
def test_composed_generator_ddp_ranks_agree_and_memories_equal_single_process():
    r0, r1 = run_distributed(_generator_head_steps)
    single = _generator_head_steps(0, 1)
    for key in single['state']:
        torch.testing.assert_close(r0['state'][key], r1['state'][key], rtol=0, atol=0, msg=key)
        # memories hold the gathered real features, as one process fed the global batch
        torch.testing.assert_close(r0['state'][key], single['state'][key], rtol=0, atol=0,
                                   msg=key)
    assert int(single['state']['generator.aug_step']) == 3
    for g0, g1 in zip(r0['grads'], r1['grads']):
        torch.testing.assert_close(g0, g1, rtol=0, atol=0)
    # the generator acts: without it (augment='none') the gradients differ
    plain = _generator_head_steps(0, 1, 'none')
    assert not torch.allclose(plain['grads'][0], single['grads'][0])
