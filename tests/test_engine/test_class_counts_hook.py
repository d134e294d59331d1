"""ClassCountsHook: counts from the train set to modules, ShotAccuracy, checkpoints, and back."""
import os.path as osp
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import BaseLoop, Runner

import lt_plugins  # noqa: F401
from lt_plugins.engine.hooks import ClassCountsHook
from lt_plugins.evaluation.metrics.shot_accuracy import ShotAccuracy

CONFIG = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'baselines',
                  'ce_resnet32-cifar_1xb32_digits-lt.py')
DIGITS_COUNTS = [150, 104, 73, 51, 35, 25, 17, 12, 8, 6]


class CountsRecorder(nn.Module):
    """A sub-module that wants the counts (as heads and memory banks do)."""

    def __init__(self):
        super().__init__()
        self.received = []

    def set_class_counts(self, counts):
        assert isinstance(counts, torch.Tensor) and counts.dtype == torch.long
        self.received.append(counts.tolist())


# -- unit tests with a fake runner --------------------------------------------------------
class _Loop(BaseLoop):
    def __init__(self, dataloader=None, evaluator=None):  # no BaseLoop.__init__: no runner
        self.dataloader = dataloader
        self.evaluator = evaluator

    def run(self):
        pass


class _LabelsDataset:
    metainfo = dict(classes=('a', 'b', 'c'))

    def __init__(self, labels):
        self.labels = labels

    def get_gt_labels(self):
        return np.asarray(self.labels)


def _fake_runner(tmp_path, labels=None, train=True):
    model = nn.Sequential(nn.Linear(2, 3), CountsRecorder())
    metric = ShotAccuracy(topk=1)
    val_metric = ShotAccuracy(topk=1)
    train_loop = (_Loop(dataloader=types.SimpleNamespace(dataset=_LabelsDataset(labels)))
                  if train else None)
    return types.SimpleNamespace(
        model=model, work_dir=str(tmp_path), logger=MMLogger.get_instance('counts_hook_test'),
        _train_loop=train_loop, _val_loop=_Loop(evaluator=types.SimpleNamespace(
            metrics=[val_metric])), _test_loop=_Loop(evaluator=types.SimpleNamespace(
                metrics=[metric])))


def test_counts_from_train_set_published_and_saved(tmp_path):
    runner = _fake_runner(tmp_path, labels=[0, 0, 0, 2, 0, 2])
    hook = ClassCountsHook()
    hook.before_run(runner)
    assert runner.model[1].received == [[4, 0, 2]]
    for loop in (runner._val_loop, runner._test_loop):
        metric = loop.evaluator.metrics[0]
        assert metric.class_counts.tolist() == [4, 0, 2]
        assert metric.work_dir == str(tmp_path)
    checkpoint = {'meta': {'epoch': 3}}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta'] == {'epoch': 3, 'lt_class_counts': [4, 0, 2]}
    hook.before_val(runner)
    assert runner.model[1].received == [[4, 0, 2]] * 2


def test_explicit_override_wins(tmp_path):
    runner = _fake_runner(tmp_path, labels=[0, 1, 2])
    hook = ClassCountsHook(class_counts=[9, 5, 1])
    hook.before_run(runner)
    assert runner.model[1].received == [[9, 5, 1]]
    assert runner._test_loop.evaluator.metrics[0].class_counts.tolist() == [9, 5, 1]
    # a checkpoint trained with other counts does not replace the override
    hook.after_load_checkpoint(runner, {'meta': {'lt_class_counts': [1, 1, 1]}})
    assert hook.class_counts.tolist() == [9, 5, 1]
    assert runner.model[1].received[-1] == [9, 5, 1]
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['lt_class_counts'] == [9, 5, 1]
    # a metric's own class_counts argument wins over the hook
    fixed = ShotAccuracy(topk=1, class_counts=[3, 2, 1])
    runner._val_loop.evaluator.metrics.append(fixed)
    hook.before_val(runner)
    assert fixed.class_counts.tolist() == [3, 2, 1]


def test_restored_from_checkpoint_without_train_loop(tmp_path):
    runner = _fake_runner(tmp_path, train=False)
    hook = ClassCountsHook()
    hook.before_run(runner)
    assert hook.class_counts is None and runner.model[1].received == []
    hook.after_load_checkpoint(runner, {'meta': {}})  # nothing stored: nothing published
    assert hook.class_counts is None and runner.model[1].received == []
    hook.after_load_checkpoint(runner, {'meta': {'lt_class_counts': [7, 3, 2]}})
    assert hook.class_counts.tolist() == [7, 3, 2]
    assert runner.model[1].received == [[7, 3, 2]]
    assert runner._test_loop.evaluator.metrics[0].class_counts.tolist() == [7, 3, 2]


def test_counts_from_model_buffer_before_test(tmp_path):
    runner = _fake_runner(tmp_path, train=False)
    holder = nn.Module()
    holder.register_buffer('class_counts', torch.tensor([6, 0, 4]))
    runner.model.append(holder)
    hook = ClassCountsHook()
    hook.before_test(runner)
    assert hook.class_counts.tolist() == [6, 0, 4]
    assert runner._test_loop.evaluator.metrics[0].class_counts.tolist() == [6, 0, 4]


# -- a real Runner on DigitsLT -----------------------------------------------------------------
def _short_cfg(work_dir):
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.param_scheduler = []
    cfg.train_dataloader.batch_size = 96
    cfg.train_dataloader.persistent_workers = True  # as MMPretrain's tools/train.py sets it
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    cfg.default_hooks.pop('visualization', None)
    cfg.log_level = 'WARNING'
    return cfg


def _predict(runner):
    runner.model.eval()
    with torch.no_grad():
        return [out for batch in runner.test_dataloader
                for out in runner.model.test_step(batch)]


def _counts_hooks(runner):
    return [h for h in runner.hooks if isinstance(h, ClassCountsHook)]


def test_runner_train_then_test_from_checkpoint(tmp_path):
    cfg = _short_cfg(tmp_path / 'train')
    runner = Runner.from_cfg(cfg)
    recorder = CountsRecorder()
    runner.model.add_module('recorder', recorder)
    assert len(_counts_hooks(runner)) == 1  # listed in the config; import adds no second one
    runner.train()
    assert recorder.received[0] == DIGITS_COUNTS
    assert runner.val_evaluator.metrics[0].class_counts.tolist() == DIGITS_COUNTS
    ckpt_path = osp.join(cfg.work_dir, 'epoch_1.pth')
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=False)
    assert ckpt['meta']['lt_class_counts'] == DIGITS_COUNTS

    # tools/test.py builds no training set: the counts come from the checkpoint. Other
    # counts are written in to show that they are the ones that arrive.
    stored = [120, 90, 60, 40, 30, 25, 15, 12, 8, 6]  # 1 many, 5 medium, 4 few
    ckpt['meta']['lt_class_counts'] = stored
    test_ckpt = str(tmp_path / 'edited.pth')
    torch.save(ckpt, test_ckpt)
    # As tools/test.py: the full config, Runner.test() builds only the test loop.
    test_cfg = _short_cfg(tmp_path / 'test')
    test_cfg.load_from = test_ckpt
    test_cfg.custom_hooks = []  # the import adds the hook
    tester = Runner.from_cfg(test_cfg)
    test_recorder = CountsRecorder()
    tester.model.add_module('recorder', test_recorder)
    assert len(_counts_hooks(tester)) == 1
    metrics = tester.test()
    assert test_recorder.received and test_recorder.received[0] == stored
    assert tester.test_evaluator.metrics[0].class_counts.tolist() == stored
    assert {'shot/top1', 'shot/many', 'shot/medium', 'shot/few'} <= set(metrics)
    # with the training counts there were 2 many-shot classes; with these, one: the many-shot
    # accuracy is class 0's test accuracy
    outputs = _predict(tester)
    preds = torch.cat([out.pred_label for out in outputs]).numpy()
    labels = torch.cat([out.gt_label for out in outputs]).numpy()
    assert (labels == 0).sum() == 20
    acc0 = 100.0 * (preds[labels == 0] == 0).mean()
    assert metrics['shot/many'] == pytest.approx(acc0)


class _Head(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Linear(2, num_classes)


def test_head_with_fewer_classes_than_the_training_set_names_the_field(tmp_path):
    runner = _fake_runner(tmp_path, labels=[0, 1, 2, 2])
    runner.model = nn.ModuleDict(dict(backbone=nn.Linear(2, 2), head=_Head(2)))
    with pytest.raises(ValueError, match=r'model\.head\.num_classes=2 \(_Head\).*3 classes.*'
                                         r'set model\.head\.num_classes=3'):
        ClassCountsHook().before_run(runner)
    # enough classes (more is fine), and a DDP-style 'module.' prefix is stripped
    runner.model = nn.ModuleDict(dict(module=nn.ModuleDict(dict(head=_Head(3)))))
    ClassCountsHook().before_run(runner)
    runner.model = nn.ModuleDict(dict(module=nn.ModuleDict(dict(head=_Head(1)))))
    with pytest.raises(ValueError, match=r'model\.head\.num_classes=1'):
        ClassCountsHook(class_counts=[3, 1]).before_run(runner)
