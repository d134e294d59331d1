"""Class-rebalanced FIFO memory bank (MBJ Eq. 1), the plain FIFO dictionary when ``beta = 0``.

Used by ``MBJClsHead`` (feature memory, MBJ-F), ``MBJMetricHead`` (prototype memory, MBJ-W)
and, with ``beta = 0``, by STG as its feature dictionary.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine import dist
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS

_MASK64 = (1 << 64) - 1
ADMISSION_MODES = ('max_normalized', 'raw')


def _splitmix64(x: int) -> int:
    """One round of SplitMix64 (Steele et al. 2014): a bijective 64-bit integer mixer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def counter_seed(seed: int, step: int) -> int:
    """Seed of the counter-based generator for ``(seed, step)``.

    A pure function of its two integers (no process-dependent ``hash()``), so every rank and
    every resumed run draws the same admission randomness at the same step.
    """
    return _splitmix64(_splitmix64(int(seed) & _MASK64) ^ (int(step) & _MASK64)) >> 1


def counter_generator(seed: int, step: int) -> torch.Generator:
    """A CPU ``torch.Generator`` keyed by ``(seed, step)``."""
    gen = torch.Generator(device='cpu')
    gen.manual_seed(counter_seed(seed, step))
    return gen


def rank_generator(seed: int, step: int, device='cpu') -> torch.Generator:
    """A ``torch.Generator`` on ``device`` keyed by ``(seed, step, rank)``: independent draws
    per rank and per step that a resumed run (restoring ``seed`` and ``step``) repeats."""
    gen = torch.Generator(device=device)
    gen.manual_seed(counter_seed(counter_seed(seed, step), dist.get_rank()))
    return gen


def rebalanced_admission_prob(class_counts: torch.Tensor, beta: float,
                              admission: str = 'max_normalized') -> torch.Tensor:
    """Per-class admission probability of MBJ Eq. 1.

    ``P_i = (1/N_i)^beta / sum_j (1/N_j)^beta``. Eq. 1 is a distribution over classes, so used
    raw (``admission='raw'``) it admits ~1/C of a balanced batch and almost nothing when C is
    large. The default reading (``'max_normalized'``) divides by ``max_j P_j``, i.e. admits a
    sample of class ``i`` with probability ``(N_min / N_i)^beta``: the rarest class is always
    stored and the class ratios of Eq. 1 are kept. ``beta = 0`` then admits every sample (plain
    FIFO). Classes with ``N_i = 0`` never occur in training and get probability 0.

    Args:
        class_counts (Tensor): ``(C,)`` training counts ``N_i``.
        beta (float): re-balancing strength (paper: 1.5).
        admission (str): ``'max_normalized'`` (default) or ``'raw'``.

    Returns:
        Tensor: ``(C,)`` float32 probabilities in ``[0, 1]``.
    """
    if admission not in ADMISSION_MODES:
        raise ValueError(f'admission={admission!r}: choose one of {ADMISSION_MODES}.')
    counts = class_counts.to(torch.float64)
    present = counts > 0
    weight = torch.zeros_like(counts)
    # (1/N)^beta computed as exp(-beta log N): exact for beta = 0 and stable for large N.
    weight[present] = torch.exp(-float(beta) * torch.log(counts[present]))
    if not bool(present.any()):
        return weight.float()
    if admission == 'raw':
        prob = weight / weight.sum()
    else:
        prob = weight / weight.max()
    return prob.clamp_(0.0, 1.0).float()


def gather_in_rank_order(*tensors: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """All-gather tensors whose first dimension may differ per rank; concatenate in rank order.

    Non-distributed: returns the inputs. Rank sizes are exchanged first, every rank pads to the
    largest, ``mmengine.dist.all_gather`` runs once per tensor, padding is dropped.
    """
    if dist.get_world_size() == 1:
        return tensors
    device = tensors[0].device
    local = torch.tensor([tensors[0].shape[0]], dtype=torch.long, device=device)
    sizes = [int(s.item()) for s in dist.all_gather(local)]
    max_size = max(sizes)
    out = []
    for t in tensors:
        pad = t.new_zeros((max_size - t.shape[0], ) + tuple(t.shape[1:]))
        parts = dist.all_gather(torch.cat([t, pad], dim=0).contiguous())
        out.append(torch.cat([p[:n] for p, n in zip(parts, sizes)], dim=0))
    return tuple(out)


@MODELS.register_module()
class RebalancedFIFOMemory(nn.Module):
    """FIFO memory bank whose per-class admission follows MBJ Eq. 1 (Liu et al., 2021).

    Each :meth:`enqueue` offers a batch of ``(feature, label)`` pairs; a pair of class ``i`` is
    admitted with probability :meth:`admission_prob` ``[i]`` (see
    :func:`rebalanced_admission_prob` for the reading of Eq. 1), admitted pairs are written
    in order at the write pointer, overwriting the oldest entries ("enqueue the newest, dequeue
    the oldest", Sec. 3.2). When one call admits more pairs than there are slots, the newest
    ``size`` win. With ``beta = 0`` every pair is admitted: a plain FIFO dictionary (STG,
    MoCo-style queues).

    Two layouts:

    * global (``per_class_slots=None``, the paper's): one ring of ``size`` slots shared by all
      classes; the class mix in memory follows the admission probabilities.
    * per-class (``per_class_slots=K``): class ``c`` owns slots ``[c*K, (c+1)*K)`` and its own
      ring pointer; the admission probability sets how often a class's slots are refreshed.
      ``size`` must equal ``num_classes * K``.

    Distributed: the batch is all-gathered from every rank in rank order before the write and
    the admission draw comes from a counter-based generator keyed by ``(seed, step)``, so all
    ranks hold bit-identical banks, equal to a single process fed the concatenated global batch.
    ``step`` is a buffer, so a resumed run continues the same random sequence.

    State (all buffers, saved in checkpoints): ``feats (size, dim) float32``, ``labels (size,)
    long`` (-1 when empty), ``valid (size,) bool``, ``ptr`` (global write pointer),
    ``class_ptr (C,)`` (per-class write pointers), ``step`` (number of enqueue calls),
    ``class_counts (C,) long``, ``write_step (size,) long`` (the ``step`` count just after the
    call that wrote each slot, -1 when empty or unknown: ``step - write_step`` is the age of
    a stored feature in enqueue calls, i.e. training iterations, its staleness). A checkpoint
    saved before ``write_step`` existed loads with it at -1 (age unknown).

    Args:
        size (int): number of slots (paper: ``5 * C``). Must be >= 1.
        dim (int): feature dimension.
        num_classes (int): number of classes ``C``.
        beta (float): re-balancing strength of Eq. 1. Defaults to 1.5.
        class_counts (Sequence[int], optional): training counts ``N_c``; overrides what
            ``ClassCountsHook`` publishes. Not needed when ``beta == 0``.
        admission (str): ``'max_normalized'`` (``P_i / max_j P_j``, default) or ``'raw'``
            (``P_i`` as printed in Eq. 1).
        per_class_slots (int, optional): use the per-class layout with this many slots each.
        seed (int): key of the admission generator. Defaults to 0.
    """

    def __init__(self,
                 size: int,
                 dim: int,
                 num_classes: int,
                 beta: float = 1.5,
                 class_counts: Optional[Sequence[int]] = None,
                 admission: str = 'max_normalized',
                 per_class_slots: Optional[int] = None,
                 seed: int = 0) -> None:
        super().__init__()
        if num_classes is None or int(num_classes) < 1:
            raise ValueError(f'memory num_classes must be >= 1, got {num_classes}: set '
                             '`num_classes` of the head (or of `memory`).')
        if dim is None or int(dim) < 1:
            raise ValueError(f'memory dim must be >= 1, got {dim}: set `in_channels` of the '
                             'head (or `memory.dim`) to the feature dimension.')
        if per_class_slots is not None:
            if int(per_class_slots) < 1:
                raise ValueError(f'memory per_class_slots must be >= 1, got {per_class_slots}.')
            if size is None:
                size = int(per_class_slots) * int(num_classes)
            if int(size) != int(per_class_slots) * int(num_classes):
                raise ValueError(
                    f'memory size={size} but per_class_slots={per_class_slots} x num_classes='
                    f'{num_classes} = {per_class_slots * num_classes}: set `memory.size` to '
                    'that product (or leave it None).')
        if size is None or int(size) < 1:
            raise ValueError(f'memory size must be >= 1, got {size}: set `memory.size` to a '
                             'positive number of slots (the paper uses 5 * num_classes).')
        if admission not in ADMISSION_MODES:
            raise ValueError(f'memory admission={admission!r}: choose one of '
                             f'{ADMISSION_MODES}.')
        if float(beta) < 0:
            raise ValueError(f'memory beta must be >= 0, got {beta}.')
        self.size = int(size)
        self.dim = int(dim)
        self.num_classes = int(num_classes)
        self.beta = float(beta)
        self.admission = admission
        self.per_class_slots = None if per_class_slots is None else int(per_class_slots)
        self.seed = int(seed)

        self.register_buffer('feats', torch.zeros(self.size, self.dim, dtype=torch.float32))
        self.register_buffer('labels', torch.full((self.size, ), -1, dtype=torch.long))
        self.register_buffer('valid', torch.zeros(self.size, dtype=torch.bool))
        self.register_buffer('ptr', torch.zeros((), dtype=torch.long))
        self.register_buffer('class_ptr', torch.zeros(self.num_classes, dtype=torch.long))
        self.register_buffer('step', torch.zeros((), dtype=torch.long))
        self.register_buffer('class_counts', torch.zeros(self.num_classes, dtype=torch.long))
        self.register_buffer('write_step', torch.full((self.size, ), -1, dtype=torch.long))
        self._explicit_counts = class_counts is not None
        if class_counts is not None:
            self._write_counts(class_counts)

    # -- class counts ---------------------------------------------------------------------
    def _write_counts(self, counts) -> None:
        counts = torch.as_tensor(counts, dtype=torch.long).reshape(-1)
        if counts.numel() != self.num_classes:
            raise ValueError(
                f'{type(self).__name__}: num_classes={self.num_classes} but the class counts '
                f'have {counts.numel()} classes: set the head\'s `num_classes` to '
                f'{counts.numel()} (the training set\'s number of classes) or fix '
                '`class_counts`.')
        if bool((counts < 0).any()):
            raise ValueError('class counts must be non-negative.')
        self.class_counts.copy_(counts.to(self.class_counts.device))

    def set_class_counts(self, counts) -> None:
        """Receive training counts ``N_c`` (``ClassCountsHook``); an explicit argument wins."""
        if self._explicit_counts:
            counts = torch.as_tensor(counts, dtype=torch.long).reshape(-1)
            if counts.numel() != self.num_classes:
                self._write_counts(counts)  # raises the num_classes error
            return
        self._write_counts(counts)

    def admission_prob(self) -> torch.Tensor:
        """Per-class admission probability ``(C,)`` (Eq. 1 under the chosen reading)."""
        if self.beta == 0 and self.admission == 'max_normalized':
            return torch.ones(self.num_classes, device=self.feats.device)
        if int(self.class_counts.sum()) == 0:
            raise RuntimeError(
                f'{type(self).__name__}: missing class counts (beta={self.beta} needs the '
                'training counts N_c). Add `dict(type=\'ClassCountsHook\')` to '
                '`custom_hooks` (configs/_base_/default_runtime.py has it) or set '
                '`class_counts=[...]` in the memory config.')
        return rebalanced_admission_prob(self.class_counts, self.beta,
                                         self.admission).to(self.feats.device)

    # -- write ----------------------------------------------------------------------------
    def _check_batch(self, feats, labels) -> None:
        """Reject a malformed batch before any state (or collective) is touched."""
        name = type(self).__name__
        if not torch.is_tensor(feats) or not (feats.is_floating_point()):
            raise ValueError(f'{name}.enqueue: `feats` must be a floating-point tensor of '
                             f'shape (B, dim={self.dim}), got '
                             f'{getattr(feats, "dtype", type(feats).__name__)}.')
        if feats.dim() != 2 or feats.shape[1] != self.dim:
            raise ValueError(f'{name}.enqueue: `feats` must have shape (B, dim={self.dim}), '
                             f'got {tuple(feats.shape)}; check that the memory `dim` equals '
                             'the feature dimension (head `in_channels`).')
        if (not torch.is_tensor(labels) or labels.is_floating_point() or labels.is_complex()
                or labels.dtype == torch.bool):
            raise ValueError(f'{name}.enqueue: `labels` must be an integer tensor of class '
                             f'indices in [0, {self.num_classes}), got '
                             f'{getattr(labels, "dtype", type(labels).__name__)}.')
        if labels.dim() != 1 or labels.shape[0] != feats.shape[0]:
            raise ValueError(f'{name}.enqueue: `labels` must have shape (B,) = '
                             f'({feats.shape[0]},) to match `feats`, got {tuple(labels.shape)}.')
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f'{name}.enqueue: `labels` must lie in [0, num_classes='
                             f'{self.num_classes}), got values in [{int(labels.min())}, '
                             f'{int(labels.max())}].')

    @torch.no_grad()
    def enqueue(self, feats: torch.Tensor, labels: torch.Tensor, gather: bool = True) -> None:
        """Offer a batch to the memory (vectorised; one call = one ``step``).

        Args:
            feats (Tensor): ``(B, dim)`` floating point; stored detached, as float32.
                Rows with NaN/Inf values are skipped (after the gather, so on every rank)
                with a logged warning; the rest of the batch is offered as usual.
            labels (Tensor): ``(B,)`` integer class indices in ``[0, C)``.
            gather (bool): all-gather the batch from every rank first (rank order). Pass
                False for inputs that are already identical on all ranks (classifier weights
                under DDP), so they are not stored ``world_size`` times.

        Raises:
            ValueError: wrong shape or dtype of ``feats`` / ``labels``, or a label outside
                ``[0, C)``; raised before any state changes (and before the gather). A
                batch that is empty on every rank (or only non-finite) is a no-op: ``step``
                does not advance.
        """
        self._check_batch(feats, labels)
        feats = feats.detach().to(self.feats.device, torch.float32)
        labels = labels.detach().to(self.feats.device, torch.long)
        if gather:
            feats, labels = gather_in_rank_order(feats, labels)
        finite = torch.isfinite(feats).all(dim=1)
        if not bool(finite.all()):
            # after the gather, so that every rank drops the same rows
            MMLogger.get_current_instance().warning(
                f'{type(self).__name__}.enqueue: skipped {int((~finite).sum())} of '
                f'{finite.numel()} features with NaN/Inf values (not stored).')
            feats, labels = feats[finite], labels[finite]
        if labels.numel() == 0:  # nothing offered (on any rank): no step, no draw
            return
        prob = self.admission_prob()
        gen = counter_generator(self.seed, int(self.step))
        draw = torch.rand(labels.shape[0], generator=gen).to(prob.device)
        admit = draw < prob[labels]
        self.step += 1
        feats, labels = feats[admit], labels[admit]
        n = labels.shape[0]
        if n == 0:
            return
        if self.per_class_slots is None:
            order = torch.arange(n, device=labels.device)
            keep = order >= n - self.size  # newest `size` win
            pos = (self.ptr + order[keep]) % self.size
            self.ptr.copy_((self.ptr + n) % self.size)
        else:
            k = self.per_class_slots
            # rank of each admitted pair among the admitted pairs of its class, in batch order
            sorted_labels, perm = torch.sort(labels, stable=True)
            cnt = torch.bincount(labels, minlength=self.num_classes)
            first = torch.cumsum(cnt, 0) - cnt
            rank_sorted = torch.arange(n, device=labels.device) - first[sorted_labels]
            rank = torch.empty_like(rank_sorted)
            rank[perm] = rank_sorted
            keep = rank >= cnt[labels] - k
            pos = labels[keep] * k + (self.class_ptr[labels[keep]] + rank[keep]) % k
            self.class_ptr.copy_((self.class_ptr + cnt) % k)
        self.feats[pos] = feats[keep]
        self.labels[pos] = labels[keep]
        self.valid[pos] = True
        self.write_step[pos] = self.step

    @torch.no_grad()
    def reset(self) -> None:
        """Empty the memory (keeps ``step`` so the random sequence goes on)."""
        self.feats.zero_()
        self.labels.fill_(-1)
        self.valid.zero_()
        self.ptr.zero_()
        self.class_ptr.zero_()
        self.write_step.fill_(-1)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # checkpoints from before `write_step` existed: the age of their entries is unknown
        key = prefix + 'write_step'
        if key not in state_dict and prefix + 'feats' in state_dict:
            state_dict[key] = torch.full_like(self.write_step, -1)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    # -- read -----------------------------------------------------------------------------
    def get(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Valid entries ``(feats (M, dim) float32, labels (M,) long)``, in slot order."""
        idx = self.valid.nonzero(as_tuple=True)[0]
        return self.feats[idx], self.labels[idx]

    def fill_ratio(self) -> float:
        """Fraction of slots holding an entry."""
        return float(self.valid.float().mean())

    def staleness(self) -> torch.Tensor:
        """``(size,)`` age in enqueue calls (training iterations) of each stored feature:
        0 for one written by the latest call; -1 for empty slots or an unknown age."""
        known = self.valid & (self.write_step >= 0)
        return torch.where(known, self.step - self.write_step,
                           torch.full_like(self.write_step, -1))

    def class_occupancy(self) -> torch.Tensor:
        """Number of valid entries per class ``(C,)``."""
        return torch.bincount(self.labels[self.valid], minlength=self.num_classes)

    def extra_repr(self) -> str:
        layout = ('global' if self.per_class_slots is None else
                  f'per_class_slots={self.per_class_slots}')
        return (f'size={self.size}, dim={self.dim}, num_classes={self.num_classes}, '
                f'beta={self.beta}, admission={self.admission}, {layout}, seed={self.seed}')
