"""IEM end-to-end through mmengine's Runner: k epochs -> checkpoint -> resume -> n epochs
equals k + n uninterrupted epochs (weights, memories with ages and validity, Adam state)."""
import logging
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

import lt_plugins  # noqa: F401  (registration)
from tests.runner_utils import ToyLT, assert_resume_matches_uninterrupted


@MODELS.register_module(force=True)
class _IEMTinyNet(nn.Module):
    """Conv-BN-ReLU toy backbone with a 4x4 output map (test only)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1),
                                  nn.BatchNorm2d(width), nn.ReLU())

    def forward(self, x):
        return (self.body(x), )


def _runner(work_dir, name, max_epochs, load_from=None, resume=False, by_iter=False):
    memory_group = dict(adam=True, lr_mult=0.1, decay_mult=0.0)
    schedule = dict(
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        param_scheduler=dict(type='MultiStepLR', milestones=[1], gamma=0.2, by_epoch=True),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=3)))
    if by_iter:   # checkpoints in after_train_iter, where IEMMemoryHook must run first
        schedule = dict(
            train_cfg=dict(by_epoch=False, max_iters=max_epochs),
            param_scheduler=dict(type='ConstantLR', factor=1.0, by_epoch=False),
            default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=5,
                                               by_epoch=False),
                               logger=dict(type='LoggerHook', interval=3)))
    return Runner(
        model=dict(type='ImageClassifier', backbone=dict(type='_IEMTinyNet'),
                   neck=dict(type='RSANeck', in_channels=8),
                   head=dict(type='IEMHead', num_classes=4, in_channels=8, global_capacity=6,
                             local_capacity=12, num_neighbors=3, warmup_iters=3,
                             local_regions=4),
                   data_preprocessor=dict(type='ClsDataPreprocessor')),
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=dict(dataset=ToyLT(), batch_size=8, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True, seed=0)),
        optim_wrapper=dict(
            optimizer=dict(type='HybridSGDAdam', lr=0.05, momentum=0.9, weight_decay=1e-4),
            paramwise_cfg=dict(custom_keys={'head.global_memory': memory_group,
                                            'head.local_memory': memory_group})),
        custom_hooks=[dict(type='ClassCountsHook'), dict(type='IEMMemoryHook',
                                                         log_interval=2)],
        randomness=dict(seed=0),
        default_scope='mmpretrain',
        load_from=load_from,
        resume=resume,
        log_level=logging.WARNING,
        **schedule)


@pytest.mark.parametrize('stop_epoch', [1, 2])  # at the lr milestone (epoch 1), after it
def test_resume_equals_uninterrupted(tmp_path, stop_epoch):
    """Weights, memories, optimizer (Adam moments of the memories) and scheduler state."""
    torch.set_num_threads(1)
    full, resumed = assert_resume_matches_uninterrupted(_runner, tmp_path, 'iem',
                                                       stop_epoch=stop_epoch, max_epochs=3)
    head = full.model.head
    assert int(head.num_steps) == 18
    assert head.global_memory.valid.any() and (head.global_memory.ages > 0).any()
    adam_a = full.optim_wrapper.optimizer.state[head.local_memory.keys]['exp_avg']
    adam_b = resumed.optim_wrapper.optimizer.state[resumed.model.head.local_memory.keys][
        'exp_avg']
    torch.testing.assert_close(adam_a, adam_b, rtol=0, atol=0)
    assert 'train/global_memory_fill' in full.message_hub.log_scalars


def test_iteration_checkpoint_resume_equals_uninterrupted(tmp_path):
    """A checkpoint taken in after_train_iter holds the flushed memory (hook priority)."""
    torch.set_num_threads(1)
    full = _runner(str(tmp_path / 'full'), 'iem_full_it', 9, by_iter=True)
    full.train()
    part = _runner(str(tmp_path / 'part'), 'iem_part_it', 5, by_iter=True)
    part.train()
    resumed = _runner(str(tmp_path / 'part'), 'iem_resumed_it', 9, by_iter=True, resume=True,
                      load_from=osp.join(str(tmp_path / 'part'), 'iter_5.pth'))
    resumed.train()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert int(full.model.head.num_steps) == 9
