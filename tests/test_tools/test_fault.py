"""Faults under DDP, as a user meets them (tools/dist_train.sh, 2 CPU processes, DigitsLT):
a rank that dies mid-training ends the whole job within seconds (no hang in a collective),
and ``--resume`` on 2 processes from the last iteration checkpoint, which lies inside an
epoch, ends equal to an uninterrupted 2-process run."""
import glob
import os
import os.path as osp
import sys
import time

import pytest
import torch

from tests.dist_utils import run_with_free_port
from tests.test_tools.test_end_to_end import CE_DIGITS, REPO

# 481 DigitsLT images over 2 ranks, 32 per batch, the partial batch dropped: 7 per epoch
ITERS_PER_EPOCH = 7
LAST_ITER = 2 * ITERS_PER_EPOCH
KILL_AT = 10  # epoch 1 (0-based), batch 3 of 7; the last checkpoint is iter_9 (batch 1)


def _config(tmp_path, kill_at=None) -> str:
    """DigitsLT CE without random crops, 2 epochs, iteration checkpoints every 3."""
    hooks = "dict(type='ClassCountsHook')"
    if kill_at is not None:
        hooks += f", dict(type='KillRankHook', rank=1, at_iter={kill_at})"
    path = tmp_path / (f'ddp_kill{kill_at}.py' if kill_at is not None else 'ddp.py')
    path.write_text(
        f"_base_ = ['{CE_DIGITS}']\n"
        "custom_imports = dict(imports=['lt_plugins', 'tests.test_tools.rank_state_hook'],\n"
        "                      allow_failed_imports=False)\n"
        "train_dataloader = dict(dataset=dict(pipeline=[dict(type='PackInputs')]))\n"
        f"custom_hooks = [{hooks}]\n"
        "train_cfg = dict(max_epochs=2)\n"
        "default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,\n"
        "                                     interval=3, max_keep_ckpts=-1, save_last=True))\n")
    return str(path)


def _dist_train(config: str, work: str, *args: str, check: bool = True):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PATH=osp.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    proc = run_with_free_port(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work,
                               '--no-validate', *args], env, cwd=REPO, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, time.time()


# A rank left waiting in a collective would wait for the process group's timeout (30 min,
# mmengine's default); the launcher ends the job ~1 s after the kill on an idle 2-core
# machine. The bound tells the two apart with room for a machine loaded many times over.
EXIT_BOUND_S = 120


def _killed_run(tmp_path, work: str, kill_at: int) -> float:
    """Run until rank 1 dies; checks that the launcher ended the job because of it and
    returns the seconds from its death to the job's exit."""
    proc, ended = _dist_train(_config(tmp_path, kill_at), work, check=False)
    assert proc.returncode != 0, 'the job survived the death of rank 1'
    # torchrun's report: rank 1's SIGKILL is the first failure, rank 0 was terminated
    report = proc.stderr[proc.stderr.rfind('Root Cause'):]
    assert 'rank      : 1' in report and 'SIGKILL' in report, proc.stderr[-3000:]
    killed_at = float(open(osp.join(work, 'killed_at.txt')).read())
    print(f'job ended {ended - killed_at:.2f} s after rank 1 died')  # shown with -s
    return ended - killed_at


@pytest.mark.slow  # three 2-process launches (~60 s on 2 busy cores)
def test_killed_rank_ends_job_and_resume_equals_uninterrupted(tmp_path):
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    _dist_train(_config(tmp_path), straight)
    last = open(osp.join(straight, 'last_checkpoint')).read().strip()
    assert last.endswith(f'iter_{LAST_ITER}.pth'), last       # 2 epochs of ITERS_PER_EPOCH

    seconds = _killed_run(tmp_path, resumed, KILL_AT)
    assert seconds < EXIT_BOUND_S, f'the job took {seconds:.1f} s to end after rank 1 died'
    assert not osp.exists(osp.join(resumed, f'iter_{KILL_AT + 2}.pth'))
    assert open(osp.join(resumed, 'last_checkpoint')).read().strip().endswith('iter_9.pth')

    # --resume (latest checkpoint in the work dir) on 2 processes, without the kill hook
    _dist_train(_config(tmp_path), resumed, '--resume')
    expected = torch.load(osp.join(straight, f'iter_{LAST_ITER}.pth'), map_location='cpu',
                          weights_only=False)
    actual = torch.load(osp.join(resumed, f'iter_{LAST_ITER}.pth'), map_location='cpu',
                        weights_only=False)
    assert actual['meta']['iter'] == expected['meta']['iter'] == LAST_ITER
    assert expected['state_dict'].keys() == actual['state_dict'].keys()
    for key, value in expected['state_dict'].items():
        torch.testing.assert_close(actual['state_dict'][key], value, rtol=0, atol=0, msg=key)
    for group_a, group_b in zip(expected['optimizer']['state'].values(),
                                actual['optimizer']['state'].values()):
        torch.testing.assert_close(group_b, group_a, rtol=0, atol=0)
    log = open(sorted(glob.glob(osp.join(resumed, '*', '*.log')))[-1]).read()
    assert 'Resuming inside epoch 1' in log  # 9 - 7: two batches of epoch 1 skipped


def test_killed_rank_ends_the_job_within_seconds(tmp_path):
    """The default suite's cheaper form: one launch, rank 1 dies at its third iteration
    while rank 0 waits in DDP's gradient all-reduce; the launcher ends the job at once.
    (Resume exactness itself runs in-process: tests/test_engine/test_mid_epoch_resume.py.)"""
    seconds = _killed_run(tmp_path, str(tmp_path / 'killed'), kill_at=2)
    assert seconds < EXIT_BOUND_S, f'the job took {seconds:.1f} s to end after rank 1 died'
