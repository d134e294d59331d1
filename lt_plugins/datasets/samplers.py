"""Class-aware data samplers for long-tailed training (instance, class-balanced, square-root,
progressively-balanced), drop-in replacements for mmengine's ``DefaultSampler``.

Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition",
ICLR 2020, Sec. 3 "Sampling strategies": a sampler draws class ``j`` with probability

    p_j = n_j^q / sum_i n_i^q                                                    (Eq. 1)

(``q = 1`` instance-balanced, ``q = 0`` class-balanced, ``q = 1/2`` square-root) and then an
instance of that class uniformly; the progressively-balanced sampler interpolates over epochs

    p_j^PB(t) = (1 - t/T) * p_j^IB + (t/T) * p_j^CB.                             (Eq. 2)

Distributed contract (the part several long-tail codebases get wrong): every rank computes
the same global draw, a pure function of ``(seed, epoch)`` through a ``torch.Generator``
seeded with ``seed + epoch``, and takes the disjoint shard ``draw[rank::world_size]``. So the
shards of one epoch are disjoint and together form the whole draw, ``set_epoch`` (called by
mmengine's ``DistSamplerSeedHook``) changes the draw, and a resumed run replays the same one.
``seed`` defaults to mmengine's ``sync_random_seed()`` (the same on every rank), as in
``DefaultSampler``; the runner passes its own seed.

Use in a config::

    train_dataloader = dict(sampler=dict(type='ClassBalancedSampler', shuffle=True), ...)
"""
import math
from typing import Iterator, Optional, Sized

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import MessageHub
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from .class_counts import get_gt_labels, labels_to_counts, num_classes_of

__all__ = ['InstanceBalancedSampler', 'ClassBalancedSampler', 'SquareRootSampler',
           'ProgressivelyBalancedSampler', 'ClassAwareSampler']


class _ShardedSampler(Sampler):
    """Shared machinery: seed, epoch, epoch length and the rank shard of one global draw.

    Args:
        dataset (Sized): the dataset; class-aware subclasses read its labels through
            :func:`lt_plugins.datasets.class_counts.get_gt_labels`.
        shuffle (bool): randomise the order. Defaults to True.
        seed (int, optional): base seed, identical on all ranks; ``None`` takes mmengine's
            ``sync_random_seed()``. Defaults to None.
        round_up (bool): draw ``ceil(num_samples / world_size) * world_size`` indices so every
            rank gets the same number (as ``DefaultSampler``); otherwise draw exactly
            ``num_samples`` and the first ranks get one more. Defaults to True.
        num_samples (int, optional): indices per epoch over all ranks; ``None`` means
            ``len(dataset)``. Defaults to None.
        rank (int, optional), world_size (int, optional): override
            ``mmengine.dist.get_dist_info()`` (tests, custom launchers). Defaults to None.
    """

    def __init__(self,
                 dataset: Sized,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True,
                 num_samples: Optional[int] = None,
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None) -> None:
        dist_rank, dist_world = get_dist_info()
        self.rank = dist_rank if rank is None else int(rank)
        self.world_size = dist_world if world_size is None else int(world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f'{type(self).__name__}: rank {self.rank} is outside '
                             f'[0, world_size={self.world_size}).')
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.epoch = 0
        self._skip = 0
        self.round_up = bool(round_up)
        self.epoch_size = len(dataset) if num_samples is None else int(num_samples)
        if self.epoch_size <= 0:
            raise ValueError(
                f'{type(self).__name__}: `num_samples` must be positive (got '
                f'{self.epoch_size}); leave it None to draw len(dataset) samples per epoch.')
        if self.round_up:
            self.num_samples = math.ceil(self.epoch_size / self.world_size)
            self.total_size = self.num_samples * self.world_size
        else:
            self.num_samples = math.ceil((self.epoch_size - self.rank) / self.world_size)
            self.total_size = self.epoch_size

    def set_epoch(self, epoch: int) -> None:
        """Select the draw of ``epoch`` (mmengine's ``DistSamplerSeedHook`` calls this)."""
        self.epoch = int(epoch)

    def skip_next(self, num: int) -> None:
        """Start the next pass ``num`` indices into this rank's shard (once; later passes
        are whole). ``MidEpochResumeTrainLoop`` calls it to resume inside an epoch without
        loading the batches already trained; the draw itself is unchanged."""
        if int(num) < 0:
            raise ValueError(f'{type(self).__name__}.skip_next: num must be >= 0, got {num}.')
        self._skip = int(num)

    @property
    def pending_skip(self) -> int:
        """Indices the next pass skips (set by :meth:`skip_next`, 0 otherwise)."""
        return self._skip

    def _generator(self) -> torch.Generator:
        gen = torch.Generator()
        gen.manual_seed(self.seed + self.epoch)
        return gen

    def global_indices(self) -> torch.Tensor:
        """The whole draw of the current epoch over all ranks (``total_size`` int64 indices)."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        indices = self.global_indices()
        skip, self._skip = self._skip, 0
        return iter(indices[self.rank:self.total_size:self.world_size][skip:].tolist())

    def __len__(self) -> int:
        """Number of indices this rank yields per epoch."""
        return self.num_samples


@DATA_SAMPLERS.register_module()
class InstanceBalancedSampler(_ShardedSampler):
    """Instance-balanced sampling: every image once per epoch in random order (Kang et al.
    2020, Eq. 1 with ``q = 1``; class ``j`` is seen in proportion to ``n_j``).

    Same draw as mmengine's ``DefaultSampler`` for the default arguments (a
    ``randperm`` under ``seed + epoch``, padded by repetition to a multiple of the world
    size), plus ``num_samples``: longer or shorter epochs concatenate / cut successive
    permutations, so no image repeats before all have been seen. ``shuffle=False`` yields
    ``0, 1, 2, ...`` (cyclically).

    Args: see :class:`_ShardedSampler` (``dataset, shuffle=True, seed=None, round_up=True,
    num_samples=None``).
    """

    def global_indices(self) -> torch.Tensor:
        n = len(self.dataset)
        if n == 0:
            raise ValueError(f'{type(self).__name__}: the dataset is empty.')
        if self.shuffle:
            gen = self._generator()
            reps = math.ceil(self.epoch_size / n)
            indices = torch.cat([torch.randperm(n, generator=gen) for _ in range(reps)])
        else:
            indices = torch.arange(n)
        indices = indices[:self.epoch_size]
        if self.total_size > indices.numel():  # pad by repetition, as DefaultSampler
            indices = indices.repeat(math.ceil(self.total_size / indices.numel()))
        return indices[:self.total_size]


@DATA_SAMPLERS.register_module()
class ClassAwareSampler(_ShardedSampler):
    """Class-aware sampling with class probabilities ``p_j = n_j^q / sum_i n_i^q``
    (Kang et al., ICLR 2020, Eq. 1): draw a class from ``p``, then an instance of it
    uniformly, both with replacement, i.i.d. over the epoch.

    The draw is vectorised: ``torch.multinomial`` over the C classes, then one uniform
    number per sample indexes into that class's slice of the label-sorted index array.
    Classes without training images get probability 0 for every ``q``.

    Args:
        dataset (Sized): dataset with ``get_gt_labels()`` (any MMPretrain dataset, or a
            mmengine Concat/RepeatDataset of them).
        shuffle (bool): must be True; a class-aware draw is random by definition (use
            ``DefaultSampler`` / ``InstanceBalancedSampler`` with ``shuffle=False`` for a
            fixed order). Defaults to True.
        seed (int, optional): see :class:`_ShardedSampler`. Defaults to None.
        round_up (bool): see :class:`_ShardedSampler`. Defaults to True.
        num_samples (int, optional): indices per epoch over all ranks; ``len(dataset)`` if
            None. Defaults to None.
        q (float): the exponent of Eq. 1. Defaults to 0 (class-balanced).
    """

    def __init__(self,
                 dataset: Sized,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True,
                 num_samples: Optional[int] = None,
                 q: float = 0.0,
                 **kwargs) -> None:
        super().__init__(dataset, shuffle, seed, round_up, num_samples, **kwargs)
        if not self.shuffle:
            raise ValueError(
                f'{type(self).__name__} draws classes at random by definition; '
                '`sampler.shuffle=False` is not supported. Use '
                "dict(type='DefaultSampler', shuffle=False) for a fixed order.")
        labels = get_gt_labels(dataset)
        if labels.shape[0] != len(dataset):
            raise ValueError(
                f'{type(self).__name__}: get_gt_labels() of {type(dataset).__name__} '
                f'returned {labels.shape[0]} labels for {len(dataset)} samples.')
        num_classes = num_classes_of(dataset)
        if num_classes is None:
            num_classes = int(labels.max()) + 1 if labels.size else 0
        counts = labels_to_counts(labels, num_classes, type(dataset).__name__)
        if counts.sum() == 0:
            raise ValueError(f'{type(self).__name__}: the dataset is empty.')
        self.q = float(q)
        #: per-class number of samples ``n_j`` (LongTensor, length C)
        self.class_counts = torch.from_numpy(counts)
        # dataset indices grouped by class: class j owns sorted_idx[starts[j]:starts[j]+n_j]
        self._sorted_idx = torch.from_numpy(np.argsort(labels, kind='stable'))
        self._starts = torch.cumsum(self.class_counts, 0) - self.class_counts

    @staticmethod
    def power_probs(counts: torch.Tensor, q: float) -> torch.Tensor:
        """``p_j = n_j^q / sum_i n_i^q`` over classes with ``n_j > 0`` (float64), Eq. 1."""
        counts = counts.to(torch.float64)
        present = counts > 0
        weights = torch.where(present, counts.clamp(min=1).pow(q), torch.zeros_like(counts))
        return weights / weights.sum()

    def class_probs(self, epoch: Optional[int] = None) -> torch.Tensor:
        """Class probabilities of the draw at ``epoch`` (the current one if None)."""
        return self.power_probs(self.class_counts, self.q)

    def global_indices(self) -> torch.Tensor:
        gen = self._generator()
        probs = self.class_probs(self.epoch)
        classes = torch.multinomial(probs, self.total_size, replacement=True, generator=gen)
        counts = self.class_counts[classes]
        offsets = (torch.rand(self.total_size, generator=gen, dtype=torch.float64) *
                   counts).long()
        offsets = torch.minimum(offsets, counts - 1)  # guards u * n rounding up to n
        return self._sorted_idx[self._starts[classes] + offsets]


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(ClassAwareSampler):
    """Class-balanced sampling: every class equally likely, ``p_j = 1 / C`` (Kang et al.,
    ICLR 2020, Eq. 1 with ``q = 0``), then an instance of the class uniformly; the
    sampler of the decoupled second stage (cRT).

    Args: ``dataset, shuffle=True, seed=None, round_up=True, num_samples=None`` as in
    :class:`ClassAwareSampler`.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: Optional[int] = None,
                 round_up: bool = True, num_samples: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(dataset, shuffle, seed, round_up, num_samples, q=0.0, **kwargs)


@DATA_SAMPLERS.register_module()
class SquareRootSampler(ClassAwareSampler):
    """Square-root sampling: ``p_j = sqrt(n_j) / sum_i sqrt(n_i)`` (Kang et al., ICLR 2020,
    Eq. 1 with ``q = 1/2``; Mahajan et al. 2018), then an instance uniformly.

    Args: ``dataset, shuffle=True, seed=None, round_up=True, num_samples=None`` as in
    :class:`ClassAwareSampler`.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: Optional[int] = None,
                 round_up: bool = True, num_samples: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(dataset, shuffle, seed, round_up, num_samples, q=0.5, **kwargs)


@DATA_SAMPLERS.register_module()
class ProgressivelyBalancedSampler(ClassAwareSampler):
    """Progressively-balanced sampling: class probabilities move linearly from
    instance-balanced to class-balanced over training (Kang et al., ICLR 2020, Eq. 2):

        p_j(t) = (1 - t/T) * n_j / sum_i n_i + (t/T) * 1/C,

    with ``t`` the epoch index (0 for the first epoch, from ``set_epoch``) and ``T =
    max_epochs``; ``t/T`` is clamped to [0, 1]. Each sample draws a class from ``p(t)``
    and then an instance uniformly (with replacement, so even at ``t = 0`` this is
    i.i.d. instance sampling rather than a permutation).

    Args:
        dataset, shuffle, seed, round_up, num_samples: as in :class:`ClassAwareSampler`.
        max_epochs (int, optional): ``T``. ``None`` reads ``max_epochs`` of the running
            train loop from mmengine's ``MessageHub`` when an epoch starts (set by
            ``RuntimeInfoHook`` before training). Set it explicitly (in passes over the
            data) for iteration-based loops, whose ``max_epochs`` is not the number of
            passes. Defaults to None.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: Optional[int] = None,
                 round_up: bool = True, num_samples: Optional[int] = None,
                 max_epochs: Optional[int] = None, **kwargs) -> None:
        super().__init__(dataset, shuffle, seed, round_up, num_samples, q=1.0, **kwargs)
        if max_epochs is not None and int(max_epochs) <= 0:
            raise ValueError('ProgressivelyBalancedSampler: `sampler.max_epochs` must be '
                             f'positive, got {max_epochs}.')
        self.max_epochs = None if max_epochs is None else int(max_epochs)

    def _total_epochs(self) -> int:
        if self.max_epochs is not None:
            return self.max_epochs
        total = MessageHub.get_current_instance().get_info('max_epochs')
        if not total:
            raise RuntimeError(
                'ProgressivelyBalancedSampler needs the total number of epochs T: set '
                '`train_dataloader.sampler.max_epochs` (or run it inside an mmengine '
                'epoch-based train loop, which publishes `max_epochs`).')
        return int(total)

    def class_probs(self, epoch: Optional[int] = None) -> torch.Tensor:
        epoch = self.epoch if epoch is None else int(epoch)
        alpha = min(max(epoch / self._total_epochs(), 0.0), 1.0)
        p_instance = self.power_probs(self.class_counts, 1.0)
        p_balanced = self.power_probs(self.class_counts, 0.0)
        return (1.0 - alpha) * p_instance + alpha * p_balanced
