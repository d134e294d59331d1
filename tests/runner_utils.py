"""Shared checks that run mmengine Runners in tests."""
import os.path as osp
from typing import Callable

import torch
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset


class ToyLT(Dataset):
    """48 seeded 3x8x8 images of 4 classes with a long-tailed label distribution
    (24 / 12 / 8 / 4), each class shifted by a learnable offset."""

    class_counts = [24, 12, 8, 4]
    metainfo = dict(classes=('a', 'b', 'c', 'd'))

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.labels = torch.cat([torch.full((n, ), c) for c, n in enumerate(self.class_counts)])
        self.images = torch.randn(len(self.labels), 3, 8, 8, generator=gen)
        self.images += self.labels.view(-1, 1, 1, 1).float() * 0.3  # learnable signal

    def get_gt_labels(self):
        return self.labels.numpy()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return dict(inputs=self.images[i],
                    data_samples=DataSample().set_gt_label(int(self.labels[i])))


def _assert_tree_equal(actual, expected, where: str) -> None:
    """Nested dicts / lists of tensors and plain values, equal to the bit."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), where
        for key in expected:
            _assert_tree_equal(actual[key], expected[key], f'{where}.{key}')
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_tree_equal(a, e, f'{where}[{i}]')
    elif torch.is_tensor(expected):
        torch.testing.assert_close(actual, expected, rtol=0, atol=0, msg=where)
    else:
        assert actual == expected, f'{where}: {actual!r} != {expected!r}'


def scheduler_states(runner) -> list:
    """Every parameter scheduler's state dict (a dict of lists for several optimizers)."""
    schedulers = runner.param_schedulers or []
    if isinstance(schedulers, dict):
        return [s.state_dict() for name in sorted(schedulers) for s in schedulers[name]]
    return [s.state_dict() for s in schedulers]


def assert_training_state_equal(actual, expected) -> None:
    """Two Runners hold bit-equal training state: the model's state dict (weights, every
    buffer and memory), the optimizer state (momenta, Adam moments, param-group lr) and the
    parameter schedulers' state (step counters, ``end``, last values)."""
    a, e = actual.model.state_dict(), expected.model.state_dict()
    assert a.keys() == e.keys()
    for key in e:
        torch.testing.assert_close(a[key], e[key], rtol=0, atol=0, msg=key)
    _assert_tree_equal(actual.optim_wrapper.state_dict(), expected.optim_wrapper.state_dict(),
                       'optimizer')
    _assert_tree_equal(scheduler_states(actual), scheduler_states(expected), 'param_schedulers')


def assert_resume_matches_uninterrupted(make_runner: Callable, tmp_path, name: str,
                                        stop_epoch: int, max_epochs: int):
    """Train ``max_epochs`` straight, and ``stop_epoch`` then resume to ``max_epochs``; the
    two runs' models (weights and every buffer, memories included), optimizer and scheduler
    states must be equal to the bit. ``make_runner(work_dir, experiment_name, max_epochs=,
    load_from=, resume=)``
    builds a Runner. Returns ``(uninterrupted, resumed)`` Runners for further checks."""
    full = make_runner(str(tmp_path / 'full'), f'{name}_full', max_epochs=max_epochs)
    full.train()
    part_dir = str(tmp_path / 'part')
    make_runner(part_dir, f'{name}_part', max_epochs=stop_epoch).train()
    resumed = make_runner(part_dir, f'{name}_resumed', max_epochs=max_epochs,
                          load_from=osp.join(part_dir, f'epoch_{stop_epoch}.pth'), resume=True)
    resumed.train()
    assert_training_state_equal(resumed, full)
    return full, resumed


def assert_iteration_resume_matches_uninterrupted(make_runner: Callable, tmp_path, name: str,
                                                  resume_iter: int, **kwargs):
    """Train straight while saving iteration checkpoints, then resume a second run from
    ``iter_{resume_iter}.pth`` (inside an epoch for an epoch-based loop) and train to the
    same end; models, optimizer and scheduler states must be equal to the bit.
    ``make_runner(work_dir, experiment_name, load_from=, resume=, **kwargs)`` builds a Runner
    whose CheckpointHook saves by iteration at a period dividing ``resume_iter``. Returns both
    Runners."""
    full = make_runner(str(tmp_path / 'full'), f'{name}_full', **kwargs)
    full.train()
    checkpoint = osp.join(str(tmp_path / 'full'), f'iter_{resume_iter}.pth')
    resumed = make_runner(str(tmp_path / 'resumed'), f'{name}_resumed', load_from=checkpoint,
                          resume=True, **kwargs)
    resumed.train()
    assert resumed.iter == full.iter
    assert_training_state_equal(resumed, full)
    return full, resumed
