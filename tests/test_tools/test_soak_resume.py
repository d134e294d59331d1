"""tools/soak_resume.py: 2 processes (tools/dist_train.sh, gloo), random crops and flips in 2
persistent workers per rank, Mixup; killed while writing a checkpoint and before an
iteration, resumed with --resume after each: the end is bit-equal to a straight run."""
import pytest

from tests.test_tools import load_tool


def test_kill_plan_is_drawn_from_the_seed():
    soak = load_tool('tools/soak_resume.py')
    plan = soak.plan_kills(7, 5, 42)
    assert plan == soak.plan_kills(7, 5, 42) and plan != soak.plan_kills(8, 5, 42)
    assert len(plan) == 5 and sum(p[0] == 'write' for p in plan) == 1
    write = next(p for p in plan if p[0] == 'write')
    assert write[1] % soak.CKPT_INTERVAL == 0 and 0 < write[1] < 42
    times = [p[1] - 0.5 if p[0] == 'write' else p[1] for p in plan]
    assert times == sorted(times)
    assert soak.iters_per_epoch(2) == 7 and soak.iters_per_epoch(1) == 15


@pytest.mark.slow  # three 2-process launches of tools/dist_train.sh (~2 min on 2 busy cores)
def test_soak_two_kills_end_bit_equal(tmp_path, capsys):
    soak = load_tool('tools/soak_resume.py')
    # seed 0, 2 epochs of 7 iterations: rank 0 dies writing iter_8.pth, rank 1 before
    # iteration 13 (after resuming from iter_4, then from iter_12: both inside an epoch)
    assert soak.plan_kills(0, 2, 14) == [('write', 8), ('iter', 13, 1)]
    code = soak.main(['--seed', '0', '--kills', '2', '--epochs', '2',
                      '--work-dir', str(tmp_path / 'soak')])
    out = capsys.readouterr().out
    assert code == 0, out
    assert 'unfinished write' in out and 'PASS (seed 0)' in out
