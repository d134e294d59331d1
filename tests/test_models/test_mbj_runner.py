"""MBJ end-to-end through mmengine's Runner: k epochs -> checkpoint -> resume -> n epochs
equals k + n uninterrupted epochs (weights, optimizer-driven state and memory bank)."""
import logging

import pytest
import torch
import torch.nn as nn
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

import lt_plugins  # noqa: F401  (registration)
from tests.runner_utils import ToyLT, assert_resume_matches_uninterrupted


@MODELS.register_module(force=True)
class _MBJTinyNet(nn.Module):
    """Conv-BN-ReLU toy backbone (test only)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU())

    def forward(self, x):
        return (self.body(x), )


def _runner(work_dir, name, max_epochs, num_classes=4, load_from=None, resume=False):
    return Runner(
        model=dict(type='ImageClassifier', backbone=dict(type='_MBJTinyNet'),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='MBJClsHead', num_classes=num_classes, in_channels=8,
                             eta=15.0, memory=dict(type='RebalancedFIFOMemory', beta=1.5)),
                   data_preprocessor=dict(type='ClsDataPreprocessor')),
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=dict(dataset=ToyLT(), batch_size=8, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True, seed=0)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                                          weight_decay=1e-4)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1], gamma=0.2, by_epoch=True),
        custom_hooks=[dict(type='ClassCountsHook'),
                      dict(type='MBJMemorySwitchHook', start_epoch=1),
                      dict(type='MBJMemoryStatsHook', interval=3)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=3)),
        randomness=dict(seed=0),
        default_scope='mmpretrain',
        load_from=load_from,
        resume=resume,
        log_level=logging.WARNING,
    )


def test_resume_equals_uninterrupted(tmp_path):
    torch.set_num_threads(1)
    full, _ = assert_resume_matches_uninterrupted(_runner, tmp_path, 'mbj', stop_epoch=2,
                                                 max_epochs=3)
    bank = full.model.head.memory
    # the memory phase ran (epochs 1-2, 6 iterations each) and left entries behind
    assert int(bank.step) == 12 and bank.fill_ratio() > 0
    assert bank.class_counts.tolist() == ToyLT.class_counts
    hub = full.message_hub.log_scalars
    assert 'train/head.memory/fill' in hub and 'train/head.memory/spread_deg' in hub


def test_head_num_classes_disagreeing_with_dataset(tmp_path):
    runner = _runner(str(tmp_path), 'mbj_bad', max_epochs=1, num_classes=5)
    with pytest.raises(ValueError, match=r'model.head.num_classes=4'):
        runner.train()
