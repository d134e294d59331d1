"""Atomic checkpoints: a run killed while it writes a checkpoint loses nothing (the file is
renamed into place, last_checkpoint follows the rename, old checkpoints go only after it),
and auto-resume falls back from a truncated newest checkpoint with a warning naming both."""
import logging
import os
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

import lt_plugins  # noqa: F401  (installs the atomic writes)
from lt_plugins.engine import atomic_checkpoint
from lt_plugins.engine.atomic_checkpoint import (NoReadableCheckpointError, checkpoint_problem,
                                                 resolve_resume_checkpoint)
from tests.runner_utils import ToyLT
from tests.test_models.test_mbj_runner import _MBJTinyNet  # noqa: F401  (registers it)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (no except / cleanup in the writer)."""


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class _StopAfterEpoch(Hook):
    """Kills the run once epoch ``k`` (1-based) and its checkpoint are done."""

    priority = 'LOWEST'

    def __init__(self, k):
        self.k = k

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.k:
            raise _Killed()


def _runner(work_dir, name, max_epochs, resume=False, max_keep_ckpts=-1):
    return Runner(
        model=dict(type='ImageClassifier', backbone=dict(type='_MBJTinyNet'),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=4, in_channels=8),
                   data_preprocessor=dict(type='ClsDataPreprocessor')),
        work_dir=work_dir, experiment_name=name,
        train_dataloader=dict(dataset=ToyLT(), batch_size=8, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True, seed=0)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[2], gamma=0.2, by_epoch=True),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1,
                                           max_keep_ckpts=max_keep_ckpts),
                           logger=dict(type='LoggerHook', interval=100)),
        randomness=dict(seed=0), default_scope='mmpretrain', resume=resume,
        log_level=logging.WARNING)


def _assert_same_state(a: Runner, b: Runner):
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    sa, sb = a.optim_wrapper.state_dict(), b.optim_wrapper.state_dict()
    for pid, state in sa['state'].items():
        torch.testing.assert_close(sb['state'][pid]['momentum_buffer'],
                                   state['momentum_buffer'], rtol=0, atol=0)
    assert [s.state_dict() for s in a.param_schedulers] == \
        [s.state_dict() for s in b.param_schedulers]


def _read(path):
    with open(path) as f:
        return f.read()


def test_kill_during_a_checkpoint_write_loses_nothing(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    full = _runner(str(tmp_path / 'full'), 'full', 3)
    full.train()
    work = str(tmp_path / 'part')
    real_write = atomic_checkpoint.atomic_write_bytes

    def killed_half_way(data, path):
        if osp.basename(path) == 'epoch_2.pth':  # half the bytes reach the disk, then kill
            with open(atomic_checkpoint.tmp_path_for(path), 'wb') as f:
                f.write(data[:len(data) // 2])
            raise _Killed()
        real_write(data, path)

    monkeypatch.setattr(atomic_checkpoint, 'atomic_write_bytes', killed_half_way)
    with pytest.raises(_Killed):
        _runner(work, 'part', 3, max_keep_ckpts=1).train()
    monkeypatch.undo()
    # mmengine alone: epoch_1 deleted before the write, epoch_2 truncated in place
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))
    assert checkpoint_problem(osp.join(work, 'epoch_1.pth')) is None
    assert _read(osp.join(work, 'last_checkpoint')) == osp.join(work, 'epoch_1.pth')
    leftovers = [n for n in os.listdir(work) if '.tmp-' in n]
    assert leftovers == [f'.epoch_2.pth.tmp-{os.getpid()}']

    resumed = _runner(work, 'resumed', 3, resume=True, max_keep_ckpts=1)
    handler = _Warnings()
    resumed.logger.addHandler(handler)
    try:
        resumed.train()
    finally:
        resumed.logger.removeHandler(handler)
    assert any('unfinished checkpoint write' in m for m in handler.messages)
    assert not [n for n in os.listdir(work) if '.tmp-' in n]
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == ['epoch_3.pth']
    assert resumed.iter == full.iter == 18
    _assert_same_state(full, resumed)


def test_truncated_newest_checkpoint_falls_back_with_a_warning(tmp_path):
    torch.set_num_threads(1)
    full = _runner(str(tmp_path / 'full'), 'full', 3)
    full.train()
    work = str(tmp_path / 'part')
    part = _runner(work, 'part', 3)
    part.register_hook(_StopAfterEpoch(2))
    with pytest.raises(_Killed):
        part.train()
    newest, previous = osp.join(work, 'epoch_2.pth'), osp.join(work, 'epoch_1.pth')
    assert _read(osp.join(work, 'last_checkpoint')) == newest
    data = open(newest, 'rb').read()
    with open(newest, 'wb') as f:  # as an in-place writer killed half way leaves it
        f.write(data[:len(data) // 2])
    resumed = _runner(work, 'resumed', 3, resume=True)
    handler = _Warnings()
    resumed.logger.addHandler(handler)
    try:
        resumed.train()
    finally:
        resumed.logger.removeHandler(handler)
    warning = [m for m in handler.messages if m.startswith('Auto-resume')]
    assert len(warning) == 1
    assert f'names {newest}, which cannot be resumed from: not a complete zip archive (cut ' \
        'short?)' in warning[0]
    assert f'Resuming from {previous} instead' in warning[0]
    assert resumed.iter == full.iter
    _assert_same_state(full, resumed)  # epoch 2 trained again, same result


def _save(path, value=1.0):
    torch.save(dict(meta=dict(epoch=1), state_dict=dict(w=torch.full((64, ), value))), path)
    return path


def test_resolve_resume_checkpoint_cases(tmp_path):
    work = str(tmp_path)
    assert resolve_resume_checkpoint(work) is None  # nothing saved: a fresh start
    old = _save(osp.join(work, 'epoch_1.pth'))
    new = _save(osp.join(work, 'epoch_2.pth'), 2.0)
    os.utime(old, (1, 1))  # mtime order: epoch_2 is the newest
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(new)
    assert resolve_resume_checkpoint(work) == new
    # a damaged member (same size, one byte flipped in the tensor data): the CRC catches it
    data = bytearray(open(new, 'rb').read())
    offset = data.index(torch.full((64, ), 2.0).numpy().tobytes())
    data[offset + 5] ^= 0xFF
    open(new, 'wb').write(bytes(data))
    assert 'fails its CRC check' in checkpoint_problem(new)
    assert resolve_resume_checkpoint(work) == old
    # an empty last_checkpoint (killed while mmengine wrote it in place)
    open(osp.join(work, 'last_checkpoint'), 'w').close()
    assert resolve_resume_checkpoint(work) == old
    # no last_checkpoint at all, checkpoints on disk: the newest readable, never epoch 0
    os.remove(osp.join(work, 'last_checkpoint'))
    assert resolve_resume_checkpoint(work) == old
    # nothing readable: an error naming the files, not a silent restart
    open(old, 'wb').write(b'')
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(new)
    with pytest.raises(NoReadableCheckpointError,
                       match=r'(?s)names .*epoch_2\.pth, which cannot be resumed from: member '
                             r'.* fails its CRC.*epoch_1\.pth: the file is empty.*drop '
                             r'`--resume`'):
        resolve_resume_checkpoint(work)
