"""Resume at, before and after a learning-rate milestone is bit-exact, optimizer and
scheduler state included, also when the stopped run was shorter (its ``max_epochs`` is the
default ``end`` mmengine saves with the scheduler)."""
import logging

import pytest
import torch
from mmengine.runner import Runner

import lt_plugins  # noqa: F401  (installs the scheduler fix)
from tests.runner_utils import (ToyLT, assert_resume_matches_uninterrupted,
                                assert_training_state_equal, scheduler_states)
from tests.test_models.test_mbj_runner import _MBJTinyNet  # noqa: F401  (registers it)

MULTISTEP = [dict(type='MultiStepLR', milestones=[2], gamma=0.2, by_epoch=True)]
WARMUP_MULTISTEP = [dict(type='LinearLR', start_factor=0.25, end=2, by_epoch=True),
                    dict(type='MultiStepLR', milestones=[2, 3], gamma=0.5, by_epoch=True)]
ITER_BASED = [dict(type='MultiStepLR', milestones=[2], gamma=0.2, by_epoch=True,
                   convert_to_iter_based=True)]


def _factory(schedulers):
    def make(work_dir, name, max_epochs, load_from=None, resume=False):
        return Runner(
            model=dict(type='ImageClassifier', backbone=dict(type='_MBJTinyNet'),
                       neck=dict(type='GlobalAveragePooling'),
                       head=dict(type='LinearClsHead', num_classes=4, in_channels=8),
                       data_preprocessor=dict(type='ClsDataPreprocessor')),
            work_dir=work_dir, experiment_name=name,
            train_dataloader=dict(dataset=ToyLT(), batch_size=16, num_workers=0,
                                  sampler=dict(type='DefaultSampler', shuffle=True, seed=0)),
            train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
            param_scheduler=[dict(s) for s in schedulers],
            default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                               logger=dict(type='LoggerHook', interval=100)),
            randomness=dict(seed=0), default_scope='mmpretrain', load_from=load_from,
            resume=resume, log_level=logging.WARNING)
    return make


@pytest.mark.parametrize('schedulers', [MULTISTEP, WARMUP_MULTISTEP, ITER_BASED],
                         ids=['multistep', 'warmup+multistep', 'iter-based'])
@pytest.mark.parametrize('stop_epoch', [1, 2, 3], ids=['before', 'at', 'after'])
def test_resume_around_a_milestone_is_exact(tmp_path, schedulers, stop_epoch):
    """Milestone at epoch 2 of 4; the first run stops (its max_epochs) one epoch before,
    at and after it."""
    torch.set_num_threads(1)
    full, resumed = assert_resume_matches_uninterrupted(
        _factory(schedulers), tmp_path, 'milestone', stop_epoch=stop_epoch, max_epochs=4)
    lrs = [g['lr'] for g in full.optim_wrapper.optimizer.param_groups]
    if schedulers is MULTISTEP:
        assert lrs == [pytest.approx(0.1 * 0.2)]  # the milestone was applied once
    assert scheduler_states(resumed)[-1]['end'] == scheduler_states(full)[-1]['end']


def test_explicit_end_still_comes_from_the_checkpoint(tmp_path):
    """An ``end`` written in the config is a fixed schedule: restored as saved."""
    torch.set_num_threads(1)
    fixed = [dict(type='MultiStepLR', milestones=[1], gamma=0.2, by_epoch=True, end=2)]
    make = _factory(fixed)
    full = make(str(tmp_path / 'full'), 'full', 3)
    full.train()
    make(str(tmp_path / 'part'), 'part', 1).train()
    resumed = make(str(tmp_path / 'part'), 'resumed', 3, resume=True,
                   load_from=str(tmp_path / 'part' / 'epoch_1.pth'))
    resumed.train()
    assert scheduler_states(resumed)[0]['end'] == 2
    assert_training_state_equal(resumed, full)
