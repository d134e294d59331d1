"""RIDE (+ LDAM-DRW, + MBJ memory) through mmengine's Runner: exact resume; two-process gloo
DDP: gradients and memories equal a single process fed the global batch."""
import logging

import pytest
import torch
from mmengine.runner import Runner
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401
from tests.dist_utils import run_distributed
from tests.runner_utils import ToyLT, assert_resume_matches_uninterrupted

COUNTS = ToyLT.class_counts


def _model(**head_kw):
    head = dict(type='RIDEHead', num_classes=4, in_channels='auto', num_experts=2,
                loss=dict(type='LDAMLoss'),
                diversity=dict(type='RIDEDiversityLoss', loss_weight=-0.2),
                mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=1.5), eta=15.0,
                         memory_enabled=False))
    head.update(head_kw)
    return dict(type='RIDEClassifier',
                backbone=dict(type='MultiExpertBackbone', model_name='resnet20_cifar',
                              num_experts=2, tail_stages=1),
                neck=dict(type='GlobalAveragePooling'), head=head,
                data_preprocessor=dict(type='ClsDataPreprocessor'))


def _runner(work_dir, name, max_epochs, load_from=None, resume=False):
    return Runner(
        model=_model(),
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=dict(dataset=ToyLT(), batch_size=12, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True, seed=0)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                                          weight_decay=1e-4)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1], gamma=0.2, by_epoch=True),
        custom_hooks=[dict(type='ClassCountsHook'), dict(type='DRWHook', start_epoch=1),
                      dict(type='MBJMemorySwitchHook', start_epoch=2)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=2)),
        randomness=dict(seed=0),
        default_scope='mmpretrain',
        load_from=load_from,
        resume=resume,
        log_level=logging.WARNING,
    )


def test_resume_equals_uninterrupted(tmp_path):
    # stop after epoch 2 (DRW on since epoch 1, memory on from epoch 2), resume to 3
    full, _ = assert_resume_matches_uninterrupted(_runner, tmp_path, 'ride', stop_epoch=2,
                                                  max_epochs=3)
    head = full.model.head
    assert head.loss_module.drw_enabled and head.diversity.drw_enabled
    assert all(int(m.valid.sum()) > 0 for m in head.memories)
    torch.testing.assert_close(head.loss_module.class_counts, torch.tensor(COUNTS))


def test_router_stage_after_ride(tmp_path):
    """RIDE checkpoint -> router stage (non-strict load, everything else frozen) -> routed
    validation with ExpertUsage through the Runner's evaluator."""
    import os.path as osp
    ride = _runner(str(tmp_path / 'ride'), 'ride', max_epochs=1)
    ride.train()
    before = {k: v.clone() for k, v in ride.model.state_dict().items()}
    loader = dict(dataset=ToyLT(), batch_size=12, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    ea = Runner(
        model=_model(router=dict(top_choices=2, pos_weight=5.0), train_router=True, mbj=None),
        work_dir=str(tmp_path / 'ea'), experiment_name='ea',
        train_dataloader=dict(loader, sampler=dict(type='ClassBalancedSampler', shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=1, val_interval=1),
        val_dataloader=loader, val_cfg=dict(),
        val_evaluator=[dict(type='ShotAccuracy', topk=(1, )),
                       dict(type='ExpertUsage', num_experts=2)],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        custom_hooks=[dict(type='ClassCountsHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0), default_scope='mmpretrain', log_level=logging.WARNING,
        load_from=osp.join(str(tmp_path / 'ride'), 'epoch_1.pth'))
    ea.train()
    after = ea.model.state_dict()
    for key, value in after.items():
        if 'router' in key or key.startswith('head.memories'):
            continue
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)
    stepped = {id(p) for p in ea.optim_wrapper.optimizer.state}  # params SGD has updated
    names = {n for n, p in ea.model.named_parameters() if id(p) in stepped}
    assert names == {n for n, _ in ea.model.named_parameters() if 'router' in n}
    metrics = ea.val_loop.run()
    assert 1.0 <= metrics['experts/mean_experts'] <= 2.0
    total = metrics['experts/frac_1_experts'] + metrics['experts/frac_2_experts']
    assert abs(total - 100.0) < 1e-6


def _head_steps(rank, world_size, sharing='per_expert'):
    import lt_plugins  # noqa: F401
    from mmengine import dist as mdist
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    head = MODELS.build(dict(
        type='RIDEHead', num_classes=4, in_channels=5, num_experts=2,
        loss=dict(type='LDAMLoss', class_counts=COUNTS),
        diversity=dict(type='RIDEDiversityLoss', class_counts=COUNTS),
        mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=1.5, size=6,
                             class_counts=COUNTS), eta=15.0, sharing=sharing)))
    gen = torch.Generator().manual_seed(1)
    grads = []
    for _ in range(3):
        feats = [torch.randn(8, 5, generator=gen) for _ in range(2)]
        labels = torch.randint(0, 4, (8, ), generator=gen)
        part = slice(rank * 8 // world_size, (rank + 1) * 8 // world_size)
        head.zero_grad()
        losses = head.loss(tuple(f[part] for f in feats),
                           [DataSample().set_gt_label(int(y)) for y in labels[part]])
        sum(losses.values()).backward()
        grad = head.weight.grad.clone()
        if world_size > 1:  # what DDP does: average the gradients
            mdist.all_reduce(grad, op='mean')
        grads.append(grad)
    return dict(grads=grads, state={k: v.clone() for k, v in head.state_dict().items()})


@pytest.mark.slow  # two spawned processes (~20 s of CPU)
def test_ddp_gradients_and_memories_equal_single_process():
    r0, r1 = run_distributed(_head_steps)
    single = _head_steps(0, 1)
    for key in single['state']:
        torch.testing.assert_close(r0['state'][key], r1['state'][key], rtol=0, atol=0, msg=key)
        torch.testing.assert_close(r0['state'][key], single['state'][key], rtol=0, atol=0,
                                   msg=key)
    for g0, g1, g in zip(r0['grads'], r1['grads'], single['grads']):
        torch.testing.assert_close(g0, g1, rtol=0, atol=0)
        torch.testing.assert_close(g0, g)
    assert int(single['state']['memories.0.valid'].sum()) > 0
