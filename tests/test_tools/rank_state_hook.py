"""Test-only hooks: every rank saves its model parameters after training; one rank dies."""
import os
import os.path as osp
import signal
import time

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class RankStateDumpHook(Hook):
    """Write ``rank{r}_params.pth`` (parameters only) into the work dir after the run."""

    def after_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        params = {k: v.detach().cpu() for k, v in model.named_parameters()}
        torch.save(params, osp.join(runner.work_dir, f'rank{get_rank()}_params.pth'))


@HOOKS.register_module()
class KillRankHook(Hook):
    """Kill this process with SIGKILL (no clean-up, as a lost node) when rank ``rank``
    reaches iteration ``at_iter``; first writes the time into ``killed_at.txt`` in the
    work dir."""

    def __init__(self, rank: int = 1, at_iter: int = 2) -> None:
        self.rank, self.at_iter = rank, at_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if get_rank() == self.rank and runner.iter == self.at_iter:
            with open(osp.join(runner.work_dir, 'killed_at.txt'), 'w') as f:
                f.write(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)
