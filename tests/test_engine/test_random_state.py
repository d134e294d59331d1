"""Random state in checkpoints: a run interrupted inside an epoch and resumed ends bit-equal
to the uninterrupted one (weights, optimizer and scheduler state, memories, logged losses)
with random crops and flips in 2 persistent data workers, Mixup, and dropout."""
import logging
import os.path as osp
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

import lt_plugins  # noqa: F401  (installs the hook)
from lt_plugins.datasets import InstanceBalancedSampler
from lt_plugins.engine.random_state import (CHECKPOINT_KEY, KeyedBatchSampler, KeyedDataset,
                                            capture_global_rng, keyed_dataloader,
                                            restore_global_rng, sample_seed)
from tests.checkpoint_families import (AUGMENTED_PIPELINE, RESUME_FAMILIES, digits_config,
                                       train_family)
from tests.runner_utils import ToyLT, assert_training_state_equal


# -- units ----------------------------------------------------------------------------------
def test_sample_seed_is_pure_and_separates_every_argument():
    grid = [(s, e, p, r) for s in (0, 1) for e in (0, 1, 7) for p in (0, 1, 2, 300)
            for r in (0, 1)]
    seeds = [sample_seed(*key) for key in grid]
    assert seeds == [sample_seed(*key) for key in grid]
    assert len(set(seeds)) == len(grid)
    assert all(0 <= s < 2**64 for s in seeds)


def test_keyed_batches_positions_epochs_and_skip():
    data = list(range(10))
    inner = InstanceBalancedSampler(data, seed=3, rank=1, world_size=2)
    keyed = KeyedBatchSampler(BatchSampler(inner, 2, drop_last=False), seed=5, rank=1)
    inner.set_epoch(2)
    full = [pair for batch in keyed for pair in batch]
    assert [i for i, _ in full] == list(inner)
    assert [s for _, s in full] == [sample_seed(5, 2, p, 1) for p in range(5)]
    assert len(keyed) == 3
    inner.skip_next(3)  # the package sampler skips; positions continue at 3
    assert [pair for batch in keyed for pair in batch] == full[3:]
    assert [pair for batch in keyed for pair in batch] == full  # once only
    plain = KeyedBatchSampler(BatchSampler(SequentialSampler(data), 4, False), seed=5, rank=0)
    assert next(iter(plain))[0][1] == sample_seed(5, 0, 0, 0)
    assert next(iter(plain))[0][1] == sample_seed(5, 1, 0, 0)  # no set_epoch: passes count


class _Draws(torch.utils.data.Dataset):
    """Each item: draws from python random, numpy and torch (a random augmentation)."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.tensor([i, random.random(), np.random.rand(), torch.rand(()).item()],
                            dtype=torch.float64)


def test_keyed_dataset_leaves_the_main_process_generators_alone():
    ds = KeyedDataset(_Draws())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    before = capture_global_rng()
    a, b = ds[(3, 11)], ds[(3, 11)]
    torch.testing.assert_close(a, b, rtol=0, atol=0)   # the seed decides the draws
    assert not torch.equal(ds[(3, 12)], a)
    after = capture_global_rng()
    assert torch.equal(before['torch'], after['torch']) and before['python'] == after['python']
    assert torch.equal(before['numpy']['keys'], after['numpy']['keys'])
    assert len(ds) == 12 and ds.dataset.__class__ is _Draws


def test_global_rng_round_trip():
    state = capture_global_rng()
    expected = (random.random(), np.random.rand(), torch.rand(3), np.random.randn())
    restore_global_rng(state)
    actual = (random.random(), np.random.rand(), torch.rand(3), np.random.randn())
    assert expected[0] == actual[0] and expected[1] == actual[1] and expected[3] == actual[3]
    torch.testing.assert_close(actual[2], expected[2], rtol=0, atol=0)


def _batches(num_workers, persistent, epochs=2):
    loader = DataLoader(_Draws(), batch_size=4, num_workers=num_workers,
                        persistent_workers=persistent,
                        sampler=InstanceBalancedSampler(range(12), seed=0))
    keyed = keyed_dataloader(loader, seed=7, rank=0)
    # seen from outside, the same loader
    assert keyed.dataset is loader.dataset and keyed.sampler is loader.sampler
    assert len(keyed) == len(loader) == 3 and keyed.batch_size == 4
    out = []
    for epoch in range(epochs):
        keyed.sampler.set_epoch(epoch)
        out += list(keyed)
    return torch.cat(out)


def test_keyed_draws_do_not_depend_on_the_workers():
    reference = _batches(0, False)
    torch.testing.assert_close(_batches(2, True), reference, rtol=0, atol=0)
    torch.testing.assert_close(_batches(3, False), reference, rtol=0, atol=0)
    assert reference[:12, 0].sort().values.tolist() == list(range(12))
    assert not torch.equal(reference[:12, 1:], reference[12:, 1:])  # epochs differ


# -- a runner with every kind of randomness ---------------------------------------------------
class _AugmentedToyLT(ToyLT):
    """ToyLT with a random flip (python), noise (numpy) and shift (torch) per sample."""

    def __getitem__(self, i):
        img = self.images[i]
        if random.random() < 0.5:
            img = img.flip(-1)
        img = img + torch.from_numpy(np.random.randn(*img.shape).astype(np.float32)) * 0.1
        img = torch.roll(img, int(torch.randint(-1, 2, ())), dims=-2)
        return dict(inputs=img, data_samples=DataSample().set_gt_label(int(self.labels[i])))


@MODELS.register_module()
class _DropoutNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.3))

    def forward(self, x):
        return (self.body(x), )


def _runner(work_dir, name, load_from=None, resume=False, num_workers=2):
    return Runner(
        model=dict(type='ImageClassifier', backbone=dict(type='_DropoutNet'),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=4, in_channels=8),
                   data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=4),
                   train_cfg=dict(augments=dict(type='Mixup', alpha=1.0))),
        work_dir=work_dir, experiment_name=name,
        train_dataloader=dict(dataset=_AugmentedToyLT(), batch_size=8,
                              num_workers=num_workers, persistent_workers=num_workers > 0,
                              sampler=dict(type='InstanceBalancedSampler', shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1], gamma=0.2, by_epoch=True),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0), default_scope='mmpretrain', load_from=load_from,
        resume=resume, log_level=logging.WARNING)


def _release_workers(runner):
    """Shut the persistent data workers down now (left to the garbage collector, torch's
    shutdown waits 5 s per worker for a queue message that arrives late)."""
    iterator = getattr(runner.train_loop.dataloader, '_iterator', None)
    if iterator is not None and hasattr(iterator, '_shutdown_workers'):
        iterator._shutdown_workers()


def _train_scalars(runner):
    """Logged per-iteration training scalars (losses, lr), without timings."""
    out = {}
    for key, buffer in runner.message_hub.log_scalars.items():
        if key.startswith('train/') and 'time' not in key:
            out[key] = buffer.data[0]
    return out


def assert_same_logged(actual, expected):
    a, e = _train_scalars(actual), _train_scalars(expected)
    assert a.keys() == e.keys() and 'train/loss' in e
    for key in e:
        np.testing.assert_array_equal(a[key], e[key], err_msg=key)


def test_mid_epoch_resume_with_workers_mixup_and_dropout_is_exact(tmp_path):
    torch.set_num_threads(1)
    full = _runner(str(tmp_path / 'full'), 'full')
    full.train()
    _release_workers(full)
    # iter_8: epoch 1, 2 of its 6 batches done; resumed with another number of workers
    resumed = _runner(str(tmp_path / 'resumed'), 'resumed', num_workers=0, resume=True,
                      load_from=str(tmp_path / 'full' / 'iter_8.pth'))
    resumed.train()
    assert resumed.iter == full.iter == 12
    assert_training_state_equal(resumed, full)
    assert_same_logged(resumed, full)
    stored = torch.load(str(tmp_path / 'full' / 'iter_8.pth'), weights_only=False)
    assert stored[CHECKPOINT_KEY]['iter'] == 7 and len(stored[CHECKPOINT_KEY]['ranks']) == 1


def test_checkpoint_without_random_state_resumes_with_one_log_line(tmp_path):
    torch.set_num_threads(1)
    full = _runner(str(tmp_path / 'full'), 'full', num_workers=0)
    full.train()
    ckpt = torch.load(str(tmp_path / 'full' / 'iter_8.pth'), weights_only=False)
    del ckpt[CHECKPOINT_KEY]  # as written before this change
    old = str(tmp_path / 'old_iter_8.pth')
    torch.save(ckpt, old)
    resumed = _runner(str(tmp_path / 'resumed'), 'resumed', num_workers=0, resume=True,
                      load_from=old)
    messages = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    resumed.logger.addHandler(handler)
    resumed.logger.setLevel(logging.INFO)
    try:
        resumed.train()
    finally:
        resumed.logger.removeHandler(handler)
    absent = [m for m in messages if 'holds no random state' in m]
    assert len(absent) == 1
    assert resumed.iter == 12  # it trains on; the global draws (Mixup, dropout) differ
    weights = resumed.model.state_dict()['head.fc.weight']
    assert not torch.equal(weights, full.model.state_dict()['head.fc.weight'])


# -- every shipped CPU family on DigitsLT, 2 data workers ---------------------------------------
FAST = ['ce', 'stg1', 'iem']  # plain, Mixup (batch augment), memories


def _family_runner(name, root, work, experiment, init=None, load_from=None, resume=False):
    config, model, _, extra = RESUME_FAMILIES[name]
    extra += ("\ndefault_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, "
              "interval=3, max_keep_ckpts=-1), logger=dict(interval=1))")
    path = digits_config(config, osp.join(root, f'{name}_{experiment}.py'), model,
                         max_epochs=2, load_from=init, num_workers=2,
                         train_pipeline=AUGMENTED_PIPELINE, extra=extra)
    cfg = Config.fromfile(path)
    cfg.work_dir, cfg.experiment_name, cfg.log_level = work, experiment, logging.WARNING
    if resume:
        cfg.load_from, cfg.resume = load_from, True
    return Runner.from_cfg(cfg)


def _assert_family_resume(name, tmp_path):
    torch.set_num_threads(1)
    root = str(tmp_path)
    predecessor = RESUME_FAMILIES[name][2]
    # the stage's load_from: its predecessor trained 1 epoch
    init = train_family(predecessor, osp.join(root, 'pre'), {}) if predecessor else None
    full = _family_runner(name, root, osp.join(root, 'full'), 'full', init=init)
    full.train()
    _release_workers(full)
    assert full.iter == 8  # 481 images, batch 128: 4 iterations per epoch
    # iter_6: epoch 1 (0-based), 2 of its 4 batches done
    resumed = _family_runner(name, root, osp.join(root, 'resumed'), 'resumed', init=init,
                             resume=True, load_from=osp.join(root, 'full', 'iter_6.pth'))
    resumed.train()
    _release_workers(resumed)
    assert resumed.iter == 8
    assert_training_state_equal(resumed, full)
    assert_same_logged(resumed, full)


@pytest.mark.parametrize('name', FAST)
def test_family_mid_epoch_resume_is_exact(tmp_path, name):
    _assert_family_resume(name, tmp_path)


@pytest.mark.slow  # ~15-40 s per family on a shared core (stages train their predecessors)
@pytest.mark.parametrize('name', [n for n in RESUME_FAMILIES if n not in FAST])
def test_family_mid_epoch_resume_is_exact_slow(tmp_path, name):
    _assert_family_resume(name, tmp_path)


def test_every_runner_gets_one_random_state_hook(tmp_path):
    from lt_plugins.engine.random_state import RandomStateHook
    plain = _runner(str(tmp_path / 'a'), 'hooks_a', num_workers=0)
    assert sum(isinstance(h, RandomStateHook) for h in plain.hooks) == 1
    configured = Runner(
        model=dict(type='ImageClassifier', backbone=dict(type='_DropoutNet'),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=4, in_channels=8)),
        work_dir=str(tmp_path / 'b'), experiment_name='hooks_b', default_scope='mmpretrain',
        custom_hooks=[dict(type='RandomStateHook', key_data_workers=False)],
        log_level=logging.WARNING)
    hooks = [h for h in configured.hooks if isinstance(h, RandomStateHook)]
    assert len(hooks) == 1 and hooks[0].key_data_workers is False
