"""Shared checks that run mmengine Runners in tests."""
import os.path as osp
from typing import Callable

import torch


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
