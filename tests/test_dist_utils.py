"""The multi-process test helpers: a launch retried on a port clash, a hung launch killed
with its whole process group, the spawned ranks' rendezvous on a store bound by the parent."""
import os
import socket
import sys
import time

import pytest
import torch
import torch.distributed as dist

from tests import dist_utils

BIND = ('import os, socket, time; s = socket.socket(); '
        's.bind(("127.0.0.1", int(os.environ["PORT"]))); print("bound", os.environ["PORT"])')


def test_launch_retries_with_another_port_when_its_port_was_taken(monkeypatch):
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        taken, free_port = busy.getsockname()[1], dist_utils.free_port
        ports = iter([taken, taken, free_port()])
        monkeypatch.setattr(dist_utils, 'free_port', lambda: next(ports))
        proc = dist_utils.run_with_free_port([sys.executable, '-c', BIND], {}, timeout=60)
        assert proc.returncode == 0 and proc.stdout.startswith('bound ')
        assert int(proc.stdout.split()[1]) != taken
        # another failure is returned as it is, without a retry
        ports = iter([free_port(), taken])
        proc = dist_utils.run_with_free_port([sys.executable, '-c', 'raise SystemExit(3)'],
                                             {}, timeout=60)
        assert proc.returncode == 3 and next(ports) == taken


def test_hung_launch_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / 'child.pid'
    script = (f'import subprocess, sys, time; p = subprocess.Popen([sys.executable, "-c", '
              f'"import time; time.sleep(600)"]); open(r"{pid_file}", "w").write(str(p.pid)); '
              'time.sleep(600)')
    with pytest.raises(AssertionError, match='still ran after 3 s'):
        dist_utils.run_process_group([sys.executable, '-c', script], {}, timeout=3)
    child = int(pid_file.read_text())
    for _ in range(50):          # SIGKILL to the group: the child is gone (or a zombie)
        if not _running(child):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f'the launch\'s child {child} still runs')


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                         # a killed child not yet reaped by its new parent
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return True


def _rank_sum(rank, world_size):
    t = torch.tensor([float(rank + 1)])
    dist.all_reduce(t)
    return float(t), dist.get_rank(), dist.get_world_size()


@pytest.mark.slow  # spawns two interpreters (~20 s on 2 busy cores)
def test_spawned_ranks_meet_on_the_parents_store():
    assert dist_utils.run_distributed(_rank_sum) == [(3.0, 0, 2), (3.0, 1, 2)]
