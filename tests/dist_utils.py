"""Run a function in two gloo processes on CPU (multi-process tests), and launch commands
that need a free port."""
import contextlib
import datetime
import os
import signal
import socket
import subprocess
import tempfile
import threading
from typing import Any, Callable, Dict, List, Sequence, Tuple
from unittest import mock

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A port that was free a moment ago (another process may take it before it is bound
    again: use it only through :func:`run_with_free_port`, which retries on a clash)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _port_clash(proc: subprocess.CompletedProcess) -> bool:
    """Whether a launcher failed because its port was taken (torchrun's TCPStore bind)."""
    return (proc.returncode != 0
            and 'address already in use' in f'{proc.stdout}{proc.stderr}'.lower())


def run_process_group(cmd: Sequence[str], env: Dict[str, str], timeout: float,
                      **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` in a session of its own: on
    ``timeout`` the whole process group (a launcher's workers too) is killed, then an
    ``AssertionError`` with the output's tail is raised."""
    proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f'{" ".join(cmd)} still ran after {timeout} s (killed):\n'
                             f'{out[-2000:]}\n{err[-3000:]}')
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


def run_with_free_port(cmd: Sequence[str], env: Dict[str, str], port_var: str = 'PORT',
                       attempts: int = 5, timeout: float = 300,
                       **kwargs) -> subprocess.CompletedProcess:
    """:func:`run_process_group` with ``port_var`` set to a free port in ``env``; a launcher
    such as ``tools/dist_train.sh`` binds the port itself after it was picked, so when
    another process took it in between (EADDRINUSE) the command runs again with another."""
    for _ in range(attempts):
        proc = run_process_group(cmd, dict(env, **{port_var: str(free_port())}), timeout,
                                 **kwargs)
        if not _port_clash(proc):
            return proc
    return proc


def _worker(rank: int, world_size: int, port: int, fn: Callable, args: tuple,
            out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # the parent's store, already listening on its port: nothing to pick, nothing to clash
    store = dist.TCPStore('127.0.0.1', port, world_size, is_master=False,
                          timeout=datetime.timedelta(seconds=300))
    dist.init_process_group('gloo', store=store, rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def run_distributed(fn: Callable, *args: Any, world_size: int = 2) -> List[Any]:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` gloo processes.

    ``fn`` must be importable (module level). Returns each rank's return value, in rank
    order (anything ``torch.save`` can store).
    """
    # the rendezvous store lives here, bound to a port the OS gives it (port 0) before the
    # ranks start; they connect to it as clients
    store = dist.TCPStore('127.0.0.1', 0, world_size + 1, is_master=True,
                          wait_for_workers=False, timeout=datetime.timedelta(seconds=300))
    with tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(_worker, args=(world_size, store.port, fn, args, out_dir),
                           nprocs=world_size, join=True, start_method='spawn')
        return [torch.load(os.path.join(out_dir, f'rank{r}.pt'), weights_only=False)
                for r in range(world_size)]


def run_ranks_in_threads(fn: Callable, *args: Any, world_size: int = 2,
                         rank_functions: Tuple[str, ...] = ()) -> List[Any]:
    """A cheap stand-in for :func:`run_distributed`: ``fn(rank, world_size, *args)`` in
    ``world_size`` threads of this process, with ``mmengine.dist``'s ``get_rank``,
    ``get_world_size``, ``all_gather`` and ``all_reduce`` answered in memory (rank order,
    barrier-synchronised). ``rank_functions`` names further ``module.get_rank`` attributes
    bound by ``from mmengine.dist import get_rank``. No process group, no spawn: the
    collective logic of a module is exercised in well under a second."""
    barrier = threading.Barrier(world_size, timeout=300)  # a hang guard, far above any step
    local = threading.local()
    slots: List[Any] = [None] * world_size

    def get_rank(group=None) -> int:
        return local.rank

    def get_world_size(group=None) -> int:
        return world_size

    def all_gather(data, group=None):
        slots[local.rank] = data.detach().clone()
        barrier.wait()
        out = [s.clone() for s in slots]
        barrier.wait()
        return out

    def all_reduce(data, op='sum', group=None) -> None:
        stacked = torch.stack(all_gather(data))
        reduce = dict(sum=lambda t: t.sum(0), max=lambda t: t.amax(0),
                      min=lambda t: t.amin(0), mean=lambda t: t.mean(0))[op.lower()]
        data.copy_(reduce(stacked))

    results: List[Any] = [None] * world_size
    errors: List[BaseException] = []

    def worker(rank: int) -> None:
        local.rank = rank
        try:
            results[rank] = fn(rank, world_size, *args)
        except BaseException as exc:  # noqa: B902  (re-raised in the caller)
            errors.append(exc)
            barrier.abort()

    patches = [mock.patch.multiple('mmengine.dist', get_rank=get_rank,
                                   get_world_size=get_world_size, all_gather=all_gather,
                                   all_reduce=all_reduce)]
    patches += [mock.patch(name, get_rank) for name in rank_functions]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        threads = [threading.Thread(target=worker, args=(r, )) for r in range(world_size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return results
