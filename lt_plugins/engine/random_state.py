"""Random state that survives a checkpoint: global generators of every rank, and data
augmentation keyed by (seed, epoch, position, rank) instead of by worker history.

What an interrupted run needs to continue as if nothing happened, beyond the weights,
optimizer, schedulers and memories that mmengine and the package already store:

* **global generators** (torch CPU and CUDA, numpy, python ``random``) of every rank: the
  batch augmentations (MMPretrain's Mixup / CutMix / RandomBatchAugment draw from numpy and
  torch), dropout, anything else in the training step;
* **data-worker draws** (random crops, flips): a worker's generators depend on every sample it
  loaded before, on ``num_workers`` and on when workers were (re)started, so they cannot be
  stored. :class:`RandomStateHook` rebuilds the training dataloader (:class:`KeyedDataLoader`:
  the same dataset, sampler and settings seen from outside) so that each sample is loaded
  under generators seeded by :func:`sample_seed` ``(seed, epoch, position, rank)``
  (``position``: the sample's place in this rank's order of the epoch): a pure function, the
  same in any worker, for any ``num_workers`` and ``persistent_workers``, and again after a
  resume (also inside an epoch, where the package's samplers skip the trained batches).
  With ``num_workers=0`` the main process's generators are set aside while a sample loads.
  The loader gets its own ``torch.Generator``, so creating its iterator draws nothing from the
  global one (it would after a resume, not in the uninterrupted run).
* **validation** runs between saving a checkpoint and the next epoch in the uninterrupted run
  only; the hook restores the global generators after it, so it consumes none of their
  draws.

Checkpoint layout: ``checkpoint['lt_random_state'] = dict(version=1, iter=..., ranks=[...])``,
one entry per rank (``torch``: CPU state, ``cuda``: per-device states, ``numpy``: MT19937 key
and position, ``python``: ``random.getstate()``), plain tensors / ints / floats, so the
package's ``weights_only`` loading accepts it. Restored on ``--resume`` (not for ``load_from``)
just before the first iteration. A checkpoint without it (written before this hook existed)
resumes as before, with one log line saying the random state is absent.

Conditions: hooks that run between the checkpoint and the next iteration draw nothing from
the global generators (true of mmengine's and the package's); the same world size (rank
``r`` restores entry ``r``).
"""
import random
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS
from torch.utils.data import DataLoader, Dataset, Sampler

CHECKPOINT_KEY = 'lt_random_state'
_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """SplitMix64 finaliser: a bijective scramble of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_seed(seed: int, epoch: int, position: int, rank: int) -> int:
    """The 64-bit seed a sample is loaded under: a pure function of the run's ``seed``, the
    ``epoch``, the sample's ``position`` in this rank's order of the epoch and the ``rank``."""
    h = _mix64(int(seed) & _MASK64)
    for part in (epoch, position, rank):
        h = _mix64(h ^ (int(part) & _MASK64))
    return h


def seed_generators(seed: int) -> None:
    """Seed python ``random``, numpy's global generator and torch's CPU generator."""
    random.seed(seed)
    np.random.seed([seed & 0xFFFFFFFF, seed >> 32])
    torch.default_generator.manual_seed(seed)


# -- keyed data loading ----------------------------------------------------------------------
class KeyedBatchSampler(Sampler):
    """Wraps a loader's batch sampler: yields batches of ``(index, seed)`` pairs, ``seed``
    from :func:`sample_seed` with the sample's position in this rank's order of the epoch.

    The epoch is the sampler's ``epoch`` (``set_epoch``) or, for a sampler without one, the
    number of passes; positions start at the sampler's ``pending_skip`` (the package's
    samplers skip the batches a mid-epoch resume already trained).
    """

    def __init__(self, batch_sampler, seed: int, rank: int) -> None:
        self.batch_sampler = batch_sampler
        self.seed, self.rank, self._passes = int(seed), int(rank), 0

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[List[tuple]]:
        sampler = getattr(self.batch_sampler, 'sampler', None)
        epoch = getattr(sampler, 'epoch', None)
        epoch = self._passes if epoch is None else int(epoch)
        self._passes += 1
        position = int(getattr(sampler, 'pending_skip', 0) or 0)
        for batch in self.batch_sampler:
            keyed = []
            for index in batch:
                keyed.append((index, sample_seed(self.seed, epoch, position, self.rank)))
                position += 1
            yield keyed


class KeyedDataset(Dataset):
    """Wraps a dataset: ``dataset[(index, seed)]`` loads ``index`` with the generators seeded
    by ``seed`` (in the main process, its own generators are put back afterwards); a plain
    index loads as usual. Other attributes are the wrapped dataset's."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getattr__(self, name: str) -> Any:
        if name in ('dataset', '__setstate__') or name.startswith('__'):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        if not isinstance(item, tuple):
            return self.dataset[item]
        index, seed = item
        if torch.utils.data.get_worker_info() is not None:
            seed_generators(seed)
            return self.dataset[index]
        saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        try:
            seed_generators(seed)
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


class KeyedDataLoader(DataLoader):
    """A ``DataLoader`` whose iterators load each sample under :func:`sample_seed`.

    Seen from outside it is the loader it was built from: ``dataset``, ``sampler``,
    ``batch_sampler``, ``batch_size`` are the original objects (hooks, ``set_epoch`` and
    ``skip_next`` reach them); only its iterators use the keyed batch sampler and dataset.
    """

    def __init__(self, *args, key_seed: int = 0, key_rank: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._keyed_dataset = KeyedDataset(self.dataset)
        self._keyed_batches = KeyedBatchSampler(self.batch_sampler, key_seed, key_rank)

    @property
    def _index_sampler(self):
        return self._keyed_batches

    def _get_iterator(self):
        original = self.dataset
        object.__setattr__(self, 'dataset', self._keyed_dataset)  # read by the iterator
        try:
            return super()._get_iterator()
        finally:
            object.__setattr__(self, 'dataset', original)


def keyed_dataloader(loader: DataLoader, seed: int, rank: int) -> Optional[DataLoader]:
    """The same loader (dataset, sampler, batch size, workers, collate, ...) with per-sample
    keyed seeding and its own generator; None when it cannot be keyed (an iterable dataset,
    no automatic batching, already keyed)."""
    if (isinstance(loader, KeyedDataLoader) or loader.batch_sampler is None
            or isinstance(loader.dataset, torch.utils.data.IterableDataset)):
        return None
    generator = torch.Generator()
    generator.manual_seed(int(seed) & _MASK64)
    common = dict(num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                  pin_memory=loader.pin_memory, timeout=loader.timeout,
                  worker_init_fn=loader.worker_init_fn,
                  multiprocessing_context=loader.multiprocessing_context,
                  generator=generator, persistent_workers=loader.persistent_workers,
                  pin_memory_device=loader.pin_memory_device, key_seed=seed, key_rank=rank)
    if loader.num_workers > 0:
        common['prefetch_factor'] = loader.prefetch_factor
    if loader.batch_size is not None:
        return KeyedDataLoader(loader.dataset, batch_size=loader.batch_size,
                               sampler=loader.sampler, drop_last=loader.drop_last, **common)
    return KeyedDataLoader(loader.dataset, batch_sampler=loader.batch_sampler, **common)


# -- global generators -------------------------------------------------------------------------
def capture_global_rng() -> Dict[str, Any]:
    """This process's global generators as plain tensors / ints / floats."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(torch=torch.get_rng_state(),
                 numpy=dict(kind=str(kind), keys=torch.from_numpy(keys.astype(np.int64)),
                            pos=int(pos), has_gauss=int(has_gauss), gauss=float(gauss)),
                 python=list(_plain(random.getstate())))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return state


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def restore_global_rng(state: Dict[str, Any]) -> None:
    """Set this process's global generators to a :func:`capture_global_rng` state."""
    torch.set_rng_state(state['torch'])
    np_state = state['numpy']
    np.random.set_state((np_state['kind'], np_state['keys'].numpy().astype(np.uint32),
                         np_state['pos'], np_state['has_gauss'], np_state['gauss']))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    if 'cuda' in state and torch.cuda.is_available():
        for device, cuda_state in enumerate(state['cuda'][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)


def _checkpoint_due(runner, after: str) -> bool:
    """Whether a ``CheckpointHook`` saves at this ``after_train_{iter,epoch}`` (the same
    answer on every rank); True when some checkpoint hook is not mmengine's, to be safe."""
    for hook in runner.hooks:
        if not isinstance(hook, CheckpointHook):
            if 'checkpoint' in type(hook).__name__.lower():
                return True
            continue
        begin = getattr(hook, 'save_begin', 0)
        if after == 'iter' and not hook.by_epoch:
            if hook.every_n_train_iters(runner, hook.interval, begin) or (
                    hook.save_last and hook.is_last_train_iter(runner)):
                return True
        if after == 'epoch' and hook.by_epoch:
            if hook.every_n_epochs(runner, hook.interval, begin) or (
                    hook.save_last and hook.is_last_train_epoch(runner)):
                return True
    return False


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Put the random state of every rank into checkpoints and key data augmentation by
    ``(seed, epoch, position, rank)``, so a resumed run draws what the uninterrupted one
    drew (see :mod:`lt_plugins.engine.random_state`).

    ``import lt_plugins`` adds it to every Runner that lacks it (like ``ClassCountsHook``).
    Priority ``LOW``: it captures after the other hooks of an iteration and before
    ``CheckpointHook`` (``VERY_LOW``) writes.

    Args:
        key_data_workers (bool): rebuild the training dataloader with keyed per-sample
            seeding. Defaults to True.
    """

    priority = 'LOW'

    def __init__(self, key_data_workers: bool = True) -> None:
        self.key_data_workers = bool(key_data_workers)
        self._captured: Optional[List[Optional[dict]]] = None
        self._pending: Optional[dict] = None
        self._before_val: Optional[dict] = None

    # -- data -----------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        if not self.key_data_workers:
            return
        loop = runner.train_loop
        loader = getattr(loop, 'dataloader', None)
        if not isinstance(loader, DataLoader):
            return
        seed = runner.seed if runner.seed is not None else 0
        keyed = keyed_dataloader(loader, seed, get_rank())
        if keyed is None:
            return
        loop.dataloader = keyed
        if isinstance(loop, IterBasedTrainLoop):
            from mmengine.runner.loops import _InfiniteDataloaderIterator
            loop.dataloader_iterator = _InfiniteDataloaderIterator(keyed)

    # -- capture ----------------------------------------------------------------------------
    # A capture is valid from the end of an iteration (or epoch) until the next iteration
    # starts; a checkpoint written in between (by iteration, by epoch, best after validation)
    # takes it. Under DDP the states are gathered (a collective) only where a checkpoint is
    # due and once per epoch.
    def _capture(self) -> None:
        state = capture_global_rng()
        self._captured = all_gather_object(state) if get_world_size() > 1 else [state]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if get_world_size() > 1 and _checkpoint_due(runner, 'iter'):
            self._capture()

    def after_train_epoch(self, runner) -> None:
        self._capture()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        ranks = self._captured
        if ranks is None:  # this rank's state now; under DDP the others' are unknown
            ranks = [capture_global_rng()] + [None] * (get_world_size() - 1)
        checkpoint[CHECKPOINT_KEY] = dict(version=1, iter=runner.iter, ranks=ranks)

    # -- restore ------------------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from: weights only, a fresh random state
        stored = checkpoint.get(CHECKPOINT_KEY)
        rank, world = get_rank(), get_world_size()
        if stored is None:
            runner.logger.info(
                'RandomStateHook: the checkpoint holds no random state (written before it was '
                'stored): the global generators continue from this run\'s seed, so batch '
                'augmentations and dropout differ from an uninterrupted run; data '
                'augmentation is keyed by (seed, epoch, position, rank) all the same.')
            return
        ranks = stored.get('ranks') or []
        if len(ranks) != world:
            runner.logger.warning(
                f'RandomStateHook: the checkpoint holds the random state of {len(ranks)} '
                f'rank(s), this run has {world}; ranks without a stored state keep theirs.')
        self._pending = ranks[rank] if rank < len(ranks) else None
        if self._pending is None and rank < len(ranks):
            runner.logger.warning(f'RandomStateHook: no random state for rank {rank} in the '
                                  'checkpoint (saved outside a checkpoint interval).')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._captured = None
        if self._pending is not None:
            restore_global_rng(self._pending)
            self._pending = None

    # -- validation draws nothing from the training generators ---------------------------------
    def before_val(self, runner) -> None:
        self._before_val = capture_global_rng()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_global_rng(self._before_val)
            self._before_val = None


def _patch_default_random_state_hook() -> None:
    """Every Runner gets a :class:`RandomStateHook` unless its config names one."""
    import functools

    from mmengine.runner import Runner
    original = Runner.register_hooks
    if getattr(original, '_lt_random_state', False):
        return

    @functools.wraps(original)
    def register_hooks(self, default_hooks=None, custom_hooks=None):
        custom_hooks = list(custom_hooks or [])

        def is_it(hook) -> bool:
            kind = hook.get('type') if isinstance(hook, dict) else type(hook)
            name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
            return name.split('.')[-1] == 'RandomStateHook'

        if not any(is_it(h) for h in custom_hooks):
            custom_hooks.append(dict(type=RandomStateHook))
        return original(self, default_hooks, custom_hooks)

    register_hooks._lt_random_state = True
    Runner.register_hooks = register_hooks


def install_random_state() -> None:
    """Add :class:`RandomStateHook` to every Runner (see the module). Idempotent."""
    _patch_default_random_state_hook()


__all__ = ['KeyedBatchSampler', 'KeyedDataLoader', 'KeyedDataset', 'RandomStateHook',
           'capture_global_rng', 'install_random_state', 'keyed_dataloader',
           'restore_global_rng', 'sample_seed', 'seed_generators']
