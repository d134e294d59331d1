"""LBLSHook (Eq. 12): exact switch at t, epoch or iteration based, logging, resume."""
import copy
import types

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import IterBasedTrainLoop, Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

import lt_plugins  # noqa: F401
from lt_plugins.engine.hooks import LBLSHook


def _afa_parts():
    return nn.ModuleDict(dict(
        neck=MODELS.build(dict(type='AFANeck', in_channels=8, qkv='conv1x1',
                               placement='after_last_stage')),
        head=MODELS.build(dict(type='AFAClsHead', num_classes=3, in_channels=8))))


def _fake_runner(model):
    return types.SimpleNamespace(model=model, epoch=0, iter=0,
                                 logger=MMLogger.get_instance('lbls_test'),
                                 message_hub=MessageHub.get_instance('lbls_test'))


@pytest.mark.parametrize('by_epoch', [True, False])
def test_switches_exactly_at_start(by_epoch):
    model = _afa_parts()
    model.train()
    runner = _fake_runner(model)
    hook = LBLSHook(start=3, weight=1.5, by_epoch=by_epoch)
    hook.before_train(runner)
    for step in range(7):
        if by_epoch:
            runner.epoch = step
            hook.before_train_epoch(runner)
        else:
            runner.iter = step
        hook.before_train_iter(runner, batch_idx=0)
        expected = 1.5 if step >= 3 else 0.0
        assert model['head'].lbls_weight == expected
        assert model['neck'].generating == (step >= 3)
        assert runner.message_hub.get_scalar('train/lbls_weight').current() == expected


def test_without_hook_the_head_uses_lambda_from_the_start():
    model = _afa_parts()
    model.train()
    assert model['head'].lbls_weight == 2.0 and model['neck'].generating


def test_errors():
    with pytest.raises(ValueError, match='start'):
        LBLSHook(start=-1)
    with pytest.raises(ValueError, match='weight'):
        LBLSHook(weight=-2.0)
    with pytest.raises(RuntimeError, match='AFAClsHead'):
        LBLSHook().before_train(_fake_runner(nn.Linear(2, 2)))
    runner = _fake_runner(_afa_parts())
    runner.train_loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    with pytest.raises(ValueError, match='by_epoch=False'):
        LBLSHook(by_epoch=True).before_train(runner)
    LBLSHook(start=5, by_epoch=False).before_train(runner)


class _Toy(Dataset):
    def __init__(self, labels):
        gen = torch.Generator().manual_seed(0)
        self.images = torch.rand(len(labels), 3, 16, 16, generator=gen) * 255
        self.labels = labels

    metainfo = dict(classes=('a', 'b', 'c'))

    def __len__(self):
        return len(self.labels)

    def get_gt_labels(self):
        return list(self.labels)

    def __getitem__(self, idx):
        return dict(inputs=self.images[idx],
                    data_samples=DataSample().set_gt_label(self.labels[idx]))


class _Recorder(Hook):
    def __init__(self):
        self.rows = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.rows.append((runner.epoch, outputs['lbls_weight'].item(),
                          outputs['afa_num_gen'].item(), outputs['loss_all'].item()))


def _runner(work_dir, max_epochs, recorder, **kwargs):
    model = dict(type='LabelAwareClassifier',
                 backbone=dict(type='TimmSplitBackbone', model_name='resnet32_cifar'),
                 neck=dict(type='AFANeck', in_channels=32, feat_size=(8, 8)),
                 head=dict(type='AFAClsHead', num_classes=3, in_channels=64))
    return Runner(
        model=model, work_dir=str(work_dir), default_scope='mmpretrain',
        train_dataloader=dict(dataset=_Toy([0, 0, 0, 0, 0, 1, 1, 2]), batch_size=4,
                              sampler=dict(type='DefaultSampler', shuffle=False)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='LBLSHook', start=2, weight=2.0), recorder],
        randomness=dict(seed=0), **kwargs)


def test_runner_switch_and_resume(tmp_path):
    recorder = _Recorder()
    _runner(tmp_path, 3, recorder).train()
    epochs = [row[0] for row in recorder.rows]
    assert epochs == [0, 0, 1, 1, 2, 2]
    for epoch, weight, num_gen, loss_all in recorder.rows:
        assert (weight, num_gen > 0, loss_all > 0) == (
            (2.0, True, True) if epoch >= 2 else (0.0, False, False))
    log = open(next(tmp_path.glob('*/*.log'))).read()
    assert 'LBLS: epoch 1 (0-based), t=2: L = L_ori\n' in log
    assert 'LBLS: epoch 2 (0-based), t=2: L = L_ori + 2 * L_all' in log

    # resuming after epoch 1 and after epoch 2 continues with the right weight
    for ckpt, first_epoch in (('epoch_1.pth', 1), ('epoch_2.pth', 2)):
        resumed = _Recorder()
        _runner(tmp_path / f'resume_{first_epoch}', 4, resumed,
                load_from=str(tmp_path / ckpt), resume=True).train()
        assert resumed.rows[0][0] == first_epoch
        assert [row[1] for row in resumed.rows] == [
            2.0 if epoch >= 2 else 0.0 for epoch, *_ in resumed.rows]
