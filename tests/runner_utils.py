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


def assert_resume_matches_uninterrupted(make_runner: Callable, tmp_path, name: str,
                                        stop_epoch: int, max_epochs: int):
    """Train ``max_epochs`` straight, and ``stop_epoch`` then resume to ``max_epochs``; the
    two models' state dicts (weights and every buffer, memories included) must be equal to
    the bit. ``make_runner(work_dir, experiment_name, max_epochs=, load_from=, resume=)``
    builds a Runner. Returns ``(uninterrupted, resumed)`` Runners for further checks."""
    full = make_runner(str(tmp_path / 'full'), f'{name}_full', max_epochs=max_epochs)
    full.train()
    part_dir = str(tmp_path / 'part')
    make_runner(part_dir, f'{name}_part', max_epochs=stop_epoch).train()
    resumed = make_runner(part_dir, f'{name}_resumed', max_epochs=max_epochs,
                          load_from=osp.join(part_dir, f'epoch_{stop_epoch}.pth'), resume=True)
    resumed.train()
    expected, actual = full.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)
    return full, resumed


def assert_iteration_resume_matches_uninterrupted(make_runner: Callable, tmp_path, name: str,
                                                  resume_iter: int, **kwargs):
    """Train straight while saving iteration checkpoints, then resume a second run from
    ``iter_{resume_iter}.pth`` (inside an epoch for an epoch-based loop) and train to the
    same end; the two models' state dicts must be equal to the bit. ``make_runner(work_dir,
    experiment_name, load_from=, resume=, **kwargs)`` builds a Runner whose CheckpointHook
    saves by iteration at a period dividing ``resume_iter``. Returns both Runners."""
    full = make_runner(str(tmp_path / 'full'), f'{name}_full', **kwargs)
    full.train()
    checkpoint = osp.join(str(tmp_path / 'full'), f'iter_{resume_iter}.pth')
    resumed = make_runner(str(tmp_path / 'resumed'), f'{name}_resumed', load_from=checkpoint,
                          resume=True, **kwargs)
    resumed.train()
    assert resumed.iter == full.iter
    expected, actual = full.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)
    return full, resumed
