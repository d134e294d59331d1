"""Run a function in two gloo processes on CPU (multi-process tests)."""
import contextlib
import os
import socket
import tempfile
import threading
from typing import Any, Callable, List, Tuple
from unittest import mock

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, fn: Callable, args: tuple,
            out_dir: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
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
    with tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(_worker, args=(world_size, free_port(), fn, args, out_dir),
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
    barrier = threading.Barrier(world_size, timeout=60)
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
