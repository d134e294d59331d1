"""Per-class key-value episodic memory of IEM (Zhu & Yang, CVPR 2020, Sec. 3.1, Eq. 1-4).

Used twice by ``IEMHead``: a global memory (keys = pooled features) and a local memory (keys =
RSA region features). State layout follows the package's memory-bank family: preallocated
storage, an age vector and a validity mask, all in the checkpoint; writes are gathered across
ranks before they are applied, so every rank holds the same bank.

Cost of scale: keys take ``C * capacity * dim * 4`` bytes and values ``C * capacity * 4``; Adam
adds two more copies of each (its moments), and under DDP the dense gradient of the bank is
all-reduced every step (see :class:`EpisodicMemory`). The paper's 50,000 slots x 1,000 classes
x 512 dims would need 102 GB of keys alone; the defaults here are 512 slots per class
(CIFAR-100 with 64-dim keys: 13 MB of keys + values, x3 with Adam).
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine import dist
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS

from .rebalanced_fifo import gather_in_rank_order

_INF = float('inf')
_NO_GROUPS = 2**62  # 'no write staged' in flush's min-R exchange
READINGS = ('class', 'all', 'keys')


def squared_distances(queries: torch.Tensor, keys: torch.Tensor,
                      invalid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Batched ``||q - k||^2`` as ``(G, R, S)`` from queries ``(G, R, D)`` and keys ``(G, S, D)``.

    One ``baddbmm`` (``|q|^2 + |k|^2 - 2 q.k``). Round-off can make it slightly negative;
    callers clamp after their top-k (one pass over ``n``, not ``S``, entries). Slots where
    ``invalid`` (``(G, S)``) is True get ``inf`` (folded into ``|k|^2``: no extra pass).
    """
    qq = queries.pow(2).sum(-1, keepdim=True)
    kk = keys.pow(2).sum(-1)
    if invalid is not None:
        kk = kk.masked_fill(invalid, _INF)
    return torch.baddbmm(qq + kk.unsqueeze(1), queries, keys.transpose(1, 2), alpha=-2)


@MODELS.register_module()
class EpisodicMemory(nn.Module):
    """Per-class key-value episodic memory with top-n inverse-distance reads (IEM Eq. 1-4).

    Class ``l`` owns ``capacity`` slots of keys ``K_l`` (``dim``-vectors) and scalar values
    ``V_l`` (the probability that a key belongs to ``l``). Keys and values are
    ``nn.Parameter``\\ s (the paper trains them by back-propagation with their own Adam, lr
    1e-5; see ``configs/iem/README.md`` for the optimizer set-up), ``ages`` and ``valid`` are
    buffers. All of them travel with the checkpoint.

    **Read** (Eq. 1-2): for a query ``q`` addressing class ``l``, the ``n`` nearest valid keys of
    ``K_l`` give ``p = sum_i s_i v_i / sum_i s_i`` with ``s_i = 1 / (||q - k_i||^2 + delta)``.
    A class with fewer than ``n`` valid slots uses the ones it has; an empty class returns
    ``empty_value`` (no NaN, no gradient). :meth:`read` addresses one class per group of
    queries (positive and hard-negative reads in one call), :meth:`read_all` reads every class
    (inference). Each call makes one batched distance computation and one top-k
    (:meth:`read_all` splits the queries in chunks of ``max_read_elements`` distances).

    **Write** (Eq. 3-4), applied by :meth:`flush` once per training step, after the optimizer
    step: every valid slot ages by one, slots read in training get age 0, then the staged
    ``(key, value)`` pairs are gathered from all ranks (rank order) and written:

    * a key within ``dedupe_tol`` (squared Euclidean distance) of a stored key of its class,
      or within ``merge_radius`` (Euclidean distance) of it when that is set, does not
      append: the nearest such slot's value becomes ``gamma * v_new + (1 - gamma) * v_old``
      (Eq. 4) and its age is reset (its key is kept). Eq. 4's "the key already exists" is
      never met exactly by augmented features; ``merge_radius`` is the radius within which
      a new key counts as an existing one. Matches are against the keys stored before the
      flush;
    * otherwise it is appended to a free slot, or, when the class is full, replaces the slot
      with the largest age (ties: lowest slot index);
    * inside one flush, several new keys hitting one stored slot, or bitwise-equal new keys of
      one class, resolve to the last one (rank order, then batch order); when a class receives
      more than ``capacity`` new keys, the last ``capacity`` are kept.

    ``written_values`` (buffer, ``(C, S)``) holds each slot's value as last written by Eq. 3
    or Eq. 4 (0 for empty slots; a checkpoint saved before it existed loads it as the
    stored values, so drift counts from the load), so :meth:`value_statistics` can tell
    how far back-propagation moved the values since.

    Overwritten slots are recorded so that ``IEMMemoryHook`` can zero their optimizer state
    (Adam moments of the evicted key must not push the new one).

    Reads in ``eval()`` mode and :meth:`read_all` change no state.

    **Bad input**: every entry point checks the shape and dtype of its tensors and that
    classes lie in ``[0, C)``, and raises a ``ValueError`` naming the argument before any
    state (or staged write) changes, so a failed call leaves the memory as it was.
    :meth:`write` skips key groups with a NaN/Inf key or value (logged warning); a
    non-finite query finds no neighbour (its read is ``empty_value``, no slot is aged).
    Empty batches are no-ops.

    Args:
        num_classes (int): number of classes ``C``.
        dim (int): key dimension.
        capacity (int): slots per class. Defaults to 512.
        num_neighbors (int): ``n`` of the top-n read. Defaults to 50 (the paper's).
        delta (float): ``delta`` of Eq. 2. Defaults to 1e-3.
        gamma (float): momentum of the value update, Eq. 4. Defaults to 0.99 (as printed).
        dedupe_tol (float): squared distance under which a new key counts as an existing one.
            Defaults to 1e-6.
        merge_radius (float, optional): Euclidean distance within which a new key merges into
            the nearest stored key of its class (Eq. 4) instead of taking a slot. Defaults
            to None (only ``dedupe_tol``).
        merge_relative (bool): read ``merge_radius`` relative to the norm of the stored key
            (merge when ``||k_new - k|| <= merge_radius * ||k||``): scale-free, so one value
            carries over between feature extractors. Defaults to False (absolute distance).
        empty_value (float): read result of a class without valid slots. Defaults to 0.
        max_read_elements (int): distances per chunk in :meth:`read_all`. Defaults to 2**22.
    """

    def __init__(self,
                 num_classes: int,
                 dim: int,
                 capacity: int = 512,
                 num_neighbors: int = 50,
                 delta: float = 1e-3,
                 gamma: float = 0.99,
                 dedupe_tol: float = 1e-6,
                 merge_radius: Optional[float] = None,
                 merge_relative: bool = False,
                 empty_value: float = 0.0,
                 max_read_elements: int = 2**22) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'EpisodicMemory: num_classes={num_classes} must be >= 1.')
        if dim < 1:
            raise ValueError(f'EpisodicMemory: dim={dim} must be >= 1.')
        if capacity < 1:
            raise ValueError(
                f'EpisodicMemory: capacity={capacity} must be >= 1 (slots per class); set '
                '`capacity` (or `global_capacity` / `local_capacity` of IEMHead) to a '
                'positive number.')
        if not 1 <= num_neighbors <= capacity:
            raise ValueError(
                f'EpisodicMemory: num_neighbors={num_neighbors} must be in [1, capacity='
                f'{capacity}]; lower `num_neighbors` or raise `capacity`.')
        if delta <= 0:
            raise ValueError(f'EpisodicMemory: delta={delta} must be > 0 (Eq. 2).')
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f'EpisodicMemory: gamma={gamma} must be in [0, 1] (Eq. 4).')
        if dedupe_tol < 0:
            raise ValueError(f'EpisodicMemory: dedupe_tol={dedupe_tol} must be >= 0.')
        if merge_radius is not None and not float(merge_radius) >= 0:
            raise ValueError(f'EpisodicMemory: merge_radius={merge_radius} must be >= 0 (a '
                             'Euclidean distance between keys) or None.')
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        self.capacity = int(capacity)
        self.num_neighbors = int(num_neighbors)
        self.delta = float(delta)
        self.gamma = float(gamma)
        self.dedupe_tol = float(dedupe_tol)
        self.merge_radius = None if merge_radius is None else float(merge_radius)
        self.merge_relative = bool(merge_relative)
        # squared distance under which a new key merges (Eq. 4)
        self.merge_tol = max(self.dedupe_tol,
                             0.0 if merge_radius is None else self.merge_radius**2)
        self.empty_value = float(empty_value)
        self.max_read_elements = int(max_read_elements)

        shape = (self.num_classes, self.capacity)
        self.keys = nn.Parameter(torch.zeros(*shape, self.dim))
        self.values = nn.Parameter(torch.zeros(shape))
        self.register_buffer('ages', torch.zeros(shape, dtype=torch.long))
        self.register_buffer('valid', torch.zeros(shape, dtype=torch.bool))
        self.register_buffer('written_values', torch.zeros(shape))
        # Staged state of the current step. Plain attributes, not buffers: DDP's buffer
        # broadcast must not overwrite one rank's staged reads with rank 0's.
        self._pending: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._read_mask: Optional[torch.Tensor] = None
        self._step_pending = False
        self._overwritten: Optional[torch.Tensor] = None

    # ------------------------------------------------------------------ info
    def memory_bytes(self, optimizer_copies: int = 0) -> int:
        """Bytes of keys, values, ages, validity and written values (+ ``optimizer_copies`` x
        keys and values)."""
        params = (self.keys.numel() * self.keys.element_size()
                  + self.values.numel() * self.values.element_size())
        buffers = (self.ages.numel() * self.ages.element_size() + self.valid.numel()
                   + self.written_values.numel() * self.written_values.element_size())
        return params * (1 + optimizer_copies) + buffers

    def num_valid(self) -> torch.Tensor:
        """``(C,)`` number of valid slots per class."""
        return self.valid.sum(1)

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, capacity={self.capacity}, dim={self.dim}, '
                f'n={self.num_neighbors}, delta={self.delta}, gamma={self.gamma}, '
                f'merge_radius={self.merge_radius}'
                f'{" (relative)" if self.merge_relative else ""}, '
                f'bytes={self.memory_bytes() / 2**20:.2f} MiB '
                f'(+{self.memory_bytes(2) / 2**20 - self.memory_bytes() / 2**20:.2f} MiB Adam)')

    # ------------------------------------------------------------------ read
    def _aggregate(self, dist_top: torch.Tensor, val_top: torch.Tensor,
                   over_classes: bool = False) -> torch.Tensor:
        """Eq. 1 over the last dim; ``inf`` distances are empty slots (weight 0).

        ``over_classes`` divides by the similarity mass of all classes (the last two dims,
        ``(..., C, n)``) instead of each class's own.
        """
        selected = torch.isfinite(dist_top)
        safe = dist_top.masked_fill(~selected, 0.0).clamp_min(0.0)
        sim = (safe + self.delta).reciprocal() * selected
        num = (sim * val_top).sum(-1)
        den = sim.sum((-2, -1), keepdim=True).squeeze(-1) if over_classes else sim.sum(-1)
        out = num / den.clamp_min(torch.finfo(den.dtype).tiny)
        return torch.where(den > 0, out, torch.full_like(out, self.empty_value))

    def _check_queries(self, queries: torch.Tensor, where: str,
                       arg: str = 'queries') -> Tuple[torch.Tensor, bool]:
        if not torch.is_tensor(queries) or not queries.is_floating_point():
            raise ValueError(
                f'EpisodicMemory.{where}: `{arg}` must be a floating-point tensor of shape '
                f'(G, {self.dim}) or (G, R, {self.dim}), got '
                f'{getattr(queries, "dtype", type(queries).__name__)}.')
        squeeze = queries.dim() == 2
        if squeeze:
            queries = queries.unsqueeze(1)
        if queries.dim() != 3 or queries.size(-1) != self.dim:
            raise ValueError(
                f'EpisodicMemory.{where}: `{arg}` of shape {tuple(queries.shape)} do not match '
                f'the memory dim={self.dim}; expected (G, {self.dim}) or (G, R, {self.dim}). '
                'Check that the neck output dimension equals the head `in_channels`.')
        return queries.to(self.keys.dtype), squeeze

    def _check_classes(self, classes, num_groups: int, where: str) -> torch.Tensor:
        """``classes`` must be ``(G,)`` integer class indices in ``[0, C)``."""
        if (not torch.is_tensor(classes) or classes.is_floating_point() or classes.is_complex()
                or classes.dtype == torch.bool):
            raise ValueError(
                f'EpisodicMemory.{where}: `classes` must be an integer tensor of class indices '
                f'in [0, {self.num_classes}), got '
                f'{getattr(classes, "dtype", type(classes).__name__)}.')
        if classes.dim() != 1 or classes.numel() != num_groups:
            raise ValueError(f'EpisodicMemory.{where}: `classes` must have shape (G,) = '
                             f'({num_groups},), one class per query group, got '
                             f'{tuple(classes.shape)}.')
        if classes.numel() and (int(classes.min()) < 0
                                or int(classes.max()) >= self.num_classes):
            raise ValueError(
                f'EpisodicMemory.{where}: `classes` must lie in [0, num_classes='
                f'{self.num_classes}), got values in [{int(classes.min())}, '
                f'{int(classes.max())}].')
        return classes.long()

    def _grouped_distances(self, queries: torch.Tensor, classes: torch.Tensor,
                           keys: torch.Tensor) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """Distances of ``(G, R, D)`` query groups to their class's slots, one ``baddbmm``.

        Groups are bucketed by class so that a class's keys are read once per bucket (a GEMM)
        instead of being copied for every group: buckets hold up to ``w = ceil(G / U)``
        groups of one class (``U`` distinct classes), zero-padded, so a skewed batch (e.g.
        many hard negatives of one class) costs at most ``U`` extra buckets, never a
        ``U x max_count`` block. Returns the ``(NB, w, R, S)`` distances (invalid slots
        ``inf``, not clamped) and the index that picks each group's ``(R, S)`` block.
        """
        num_groups, per_group, dim = queries.shape
        uniq, inv = torch.unique(classes, return_inverse=True)
        counts = torch.bincount(inv, minlength=uniq.numel())
        width = max(1, -(-num_groups // max(1, uniq.numel())))
        buckets = (counts + width - 1) // width
        bucket_start = torch.cumsum(buckets, 0) - buckets
        order = torch.sort(inv, stable=True).indices
        rank = torch.empty_like(inv)
        rank[order] = (torch.arange(num_groups, device=inv.device)
                       - (torch.cumsum(counts, 0) - counts)[inv[order]])
        bucket = bucket_start[inv] + rank // width
        pos = rank % width
        bucket_class = torch.repeat_interleave(uniq, buckets)
        num_buckets = bucket_class.numel()
        padded = queries.new_zeros(num_buckets, width, per_group, dim).index_put(
            (bucket, pos), queries)
        dists = squared_distances(padded.view(num_buckets, width * per_group, dim),
                                  keys[bucket_class], ~self.valid[bucket_class])
        return dists.view(num_buckets, width, per_group, -1), (bucket, pos)

    def read(self, queries: torch.Tensor, classes: torch.Tensor,
             update_age: bool = True) -> torch.Tensor:
        """Read the memory of one class per query group (Eq. 1-2), differentiable.

        Args:
            queries (Tensor): ``(G, D)`` or ``(G, R, D)``; the ``R`` queries of group ``g``
                all address class ``classes[g]``.
            classes (Tensor): ``(G,)`` long.
            update_age (bool): in training mode, reset the ages of the slots read (applied
                at the next :meth:`flush`). Never done in eval mode.

        Returns:
            Tensor: ``(G,)`` or ``(G, R)`` float32 read values.
        """
        queries, squeeze = self._check_queries(queries, 'read')
        classes = self._check_classes(classes, queries.size(0), 'read')
        if queries.size(0) == 0:  # nothing to read: no state change
            out = queries.new_zeros(queries.shape[:2]).float()
            return out.squeeze(1) if squeeze else out
        with torch.autocast(device_type=queries.device.type, enabled=False):
            dists, select = self._grouped_distances(queries, classes, self.keys)
            dist_top, idx = dists.topk(self.num_neighbors, dim=-1, largest=False, sorted=False)
            dist_top, idx = dist_top[select], idx[select]                     # (G, R, n)
            val_top = self.values[classes].gather(1, idx.flatten(1)).view_as(idx)
            out = self._aggregate(dist_top, val_top)
        if update_age and self.training:
            self._mark_read(classes, idx, torch.isfinite(dist_top))
        return out.squeeze(1) if squeeze else out

    @torch.no_grad()
    def read_all(self, queries: torch.Tensor, reading: str = 'class') -> torch.Tensor:
        """Read every class's memory for every query (inference); changes no state.

        Args:
            queries (Tensor): ``(B, D)`` or ``(B, R, D)``.
            reading (str): ``'class'`` is Eq. 1: class ``l`` scores the
                similarity-weighted mean of its ``n`` nearest values, normalised by its own
                similarity mass, so the score hardly depends on how near those slots are.
                ``'all'`` divides the same weighted sum by the similarity mass of every
                class's ``n`` nearest slots (a soft kNN over all memories): a class whose
                slots are far from the query scores low, and the scores sum to at most 1.
                ``'keys'`` is ``'all'`` with every value taken as 1 (each stored key belongs
                to its class): the class's share of the similarity mass, the keys alone.

        Returns:
            Tensor: ``(B, C)`` or ``(B, R, C)`` float32 read values.
        """
        if reading not in READINGS:
            raise ValueError(f'EpisodicMemory.read_all: reading={reading!r}; use one of '
                             f'{READINGS}.')
        queries, squeeze = self._check_queries(queries, 'read_all')
        lead = queries.shape[:2]
        if queries.size(0) == 0:
            out = queries.new_zeros(*lead, self.num_classes).float()
            return out.squeeze(1) if squeeze else out
        flat = queries.reshape(-1, self.dim)
        num_slots = self.num_classes * self.capacity
        keys = self.keys.detach().reshape(num_slots, self.dim)
        kk = keys.pow(2).sum(-1).masked_fill(~self.valid.reshape(-1), _INF)
        values = self.values.detach().unsqueeze(0)
        if reading == 'keys':
            values = torch.ones_like(values)
        chunk = max(1, self.max_read_elements // num_slots)
        outs = []
        with torch.autocast(device_type=flat.device.type, enabled=False):
            for start in range(0, flat.size(0), chunk):   # memory-bounded chunks, not samples
                q = flat[start:start + chunk]
                dists = torch.addmm(q.pow(2).sum(-1, keepdim=True) + kk, q, keys.t(),
                                    alpha=-2)
                dists = dists.view(-1, self.num_classes, self.capacity)
                dist_top, idx = dists.topk(self.num_neighbors, dim=-1, largest=False,
                                           sorted=False)
                val_top = values.expand(q.size(0), -1, -1).gather(-1, idx)
                outs.append(self._aggregate(dist_top, val_top,
                                            over_classes=reading != 'class'))
        out = torch.cat(outs).view(*lead, self.num_classes)
        return out.squeeze(1) if squeeze else out

    @torch.no_grad()
    def nearest_similarity(self, queries: torch.Tensor) -> torch.Tensor:
        """Mean similarity ``s = 1 / (||q - k||^2 + delta)`` (Eq. 2) of the ``n`` nearest
        valid keys of *any* class: how close a query lies to what the memory has stored
        (an open-set confidence); changes no state.

        Args:
            queries (Tensor): ``(B, D)``.

        Returns:
            Tensor: ``(B,)`` float32; fewer than ``n`` valid keys: the mean over those;
            an empty memory gives 0.
        """
        queries, _ = self._check_queries(queries, 'nearest_similarity')
        flat = queries[:, 0]
        num_slots = self.num_classes * self.capacity
        keys = self.keys.detach().reshape(num_slots, self.dim)
        kk = keys.pow(2).sum(-1).masked_fill(~self.valid.reshape(-1), _INF)
        n = min(self.num_neighbors, num_slots)
        chunk = max(1, self.max_read_elements // num_slots)
        outs = []
        with torch.autocast(device_type=flat.device.type, enabled=False):
            for start in range(0, flat.size(0), chunk):
                q = flat[start:start + chunk]
                dists = torch.addmm(q.pow(2).sum(-1, keepdim=True) + kk, q, keys.t(),
                                    alpha=-2)
                top = dists.topk(n, dim=-1, largest=False).values
                finite = torch.isfinite(top)
                sim = (top.masked_fill(~finite, 0).clamp_min(0) + self.delta).reciprocal()
                sim = sim * finite
                outs.append(sim.sum(-1) / finite.sum(-1).clamp_min(1))
        return torch.cat(outs) if outs else flat.new_zeros(0)

    @torch.no_grad()
    def _mark_read(self, classes: torch.Tensor, idx: torch.Tensor,
                   selected: torch.Tensor) -> None:
        if self._read_mask is None or self._read_mask.device != self.valid.device:
            self._read_mask = torch.zeros_like(self.valid)
        cls = classes.view(-1, 1, 1).expand_as(idx)
        self._read_mask[cls[selected], idx[selected]] = True
        self._step_pending = True

    # ----------------------------------------------------------------- write
    @torch.no_grad()
    def write(self, keys: torch.Tensor, values: torch.Tensor, classes: torch.Tensor) -> None:
        """Stage ``(key, value)`` pairs for class memories; applied by :meth:`flush`.

        Args:
            keys (Tensor): ``(G, D)`` or ``(G, R, D)`` floating point; the ``R`` keys of
                group ``g`` go to class ``classes[g]`` (e.g. the regions of one image).
            values (Tensor): ``(G,)`` (shared by the group) or ``(G, R)``, floating point.
            classes (Tensor): ``(G,)`` integer, in ``[0, C)``.

        Bad input (shape, dtype, a class outside ``[0, C)``) raises a ``ValueError`` before
        anything is staged. A group with a NaN/Inf key or value is skipped with a logged
        warning (the rest is staged). ``G = 0`` (or nothing left after skipping) is a no-op:
        nothing is staged and the step is not marked, so :meth:`flush` ages no slot for it.
        """
        keys, _ = self._check_queries(keys.detach(), 'write', arg='keys')
        g, r = keys.shape[:2]
        if not torch.is_tensor(values) or not values.is_floating_point():
            raise ValueError(f'EpisodicMemory.write: `values` must be a floating-point tensor '
                             f'of shape ({g},) or ({g}, {r}), got '
                             f'{getattr(values, "dtype", type(values).__name__)}.')
        if tuple(values.shape) not in ((g, ), (g, r)):
            raise ValueError(f'EpisodicMemory.write: `values` must have shape ({g},) (one per '
                             f'key group) or ({g}, {r}) (one per key), got '
                             f'{tuple(values.shape)}.')
        classes = self._check_classes(classes.detach() if torch.is_tensor(classes) else classes,
                                      g, 'write')
        if self._pending and self._pending[0][0].size(1) != r:
            raise ValueError('EpisodicMemory.write: every write of one step must use the same '
                             f'number of keys per group (got {r} and '
                             f'{self._pending[0][0].size(1)}).')
        values = values.detach().to(self.values.dtype)
        values = values.view(g, 1).expand(g, r) if values.dim() == 1 else values
        finite = torch.isfinite(keys).flatten(1).all(1) & torch.isfinite(values).all(1)
        if not bool(finite.all()):
            MMLogger.get_current_instance().warning(
                f'EpisodicMemory.write: skipped {int((~finite).sum())} of {g} key groups with '
                'NaN/Inf keys or values (not stored).')
            keys, values, classes = keys[finite], values[finite], classes[finite]
        if classes.numel() == 0:  # nothing to store: no-op, the step is not marked
            return
        self._pending.append((keys.contiguous(), values.contiguous(), classes))
        self._step_pending = True

    @torch.no_grad()
    def flush(self) -> bool:
        """Apply the staged step: age, reset read ages, gather and write (collective).

        Every rank must call it at the same point (the head calls it at the start of each
        training ``loss()``; ``IEMMemoryHook`` calls it after each optimizer step).

        Returns:
            bool: whether a step was applied.
        """
        # one collective for: is a step staged anywhere, and the keys per group (R) staged on
        # the ranks that write (max R and -min R), so a rank with nothing to write (empty or
        # all-invalid batch) gathers a (0, R, D) block that matches the writers' (n, R, D)
        local_r = self._pending[0][0].size(1) if self._pending else 0
        state = torch.tensor([int(self._step_pending), local_r,
                              -local_r if self._pending else -_NO_GROUPS],
                             dtype=torch.long, device=self.valid.device)
        if dist.get_world_size() > 1:
            dist.all_reduce(state, op='max')
        if not int(state[0]):
            return False
        max_r, min_r = int(state[1]), -int(state[2])
        if max_r and min_r != max_r:  # the same answer on every rank: all raise together
            raise ValueError(
                'EpisodicMemory.flush: ranks staged key groups of different sizes R '
                f'(from {min_r} to {max_r} keys per group); every rank must write the same '
                'number of keys per group (e.g. the same number of RSA regions).')
        # take the staged step out first: whatever happens below, it is never applied twice
        pending, read_mask = self._pending, self._read_mask
        self._pending, self._read_mask, self._step_pending = [], None, False
        if read_mask is None or read_mask.device != self.valid.device:
            read_mask = torch.zeros_like(self.valid)
        if dist.get_world_size() > 1:
            reduced = read_mask.to(torch.uint8)
            dist.all_reduce(reduced, op='max')
            read_mask = reduced.bool()
        if pending:
            keys = torch.cat([p[0] for p in pending])
            values = torch.cat([p[1] for p in pending])
            classes = torch.cat([p[2] for p in pending])
        else:
            keys = self.keys.new_zeros((0, max(max_r, 1), self.dim))
            values = self.values.new_zeros((0, max(max_r, 1)))
            classes = self.ages.new_zeros((0, ))
        keys, values, classes = gather_in_rank_order(keys, values, classes)

        self.ages[self.valid] += 1
        self.ages[read_mask] = 0
        if classes.numel():
            self._apply_writes(keys.to(self.keys), values.to(self.values), classes)
        return True

    def _apply_writes(self, keys: torch.Tensor, values: torch.Tensor,
                      classes: torch.Tensor) -> None:
        """Vectorised Eq. 3-4 for ``(G, R, D)`` keys, ``(G, R)`` values, ``(G,)`` classes."""
        num_groups, per_group, _ = keys.shape
        cap = self.capacity
        dists, select = self._grouped_distances(keys, classes, self.keys.data)
        near_d, near_idx = dists.min(-1)
        near_d, near_idx = near_d[select], near_idx[select]                # (G, R)
        near_key = self.keys.data[classes.view(-1, 1).expand_as(near_idx), near_idx]
        exact = (keys - near_key).pow(2).sum(-1)                          # exact, no round-off
        tol = self.merge_tol
        if self.merge_relative and self.merge_radius is not None:
            tol = (self.merge_radius**2 * near_key.pow(2).sum(-1)).clamp_min(self.dedupe_tol)
        match = torch.isfinite(near_d) & (exact <= tol)

        flat_keys = keys.reshape(-1, self.dim)
        flat_vals = values.reshape(-1)
        flat_cls = classes.view(-1, 1).expand(num_groups, per_group).reshape(-1)
        flat_match = match.reshape(-1)
        flat_slot = near_idx.reshape(-1)
        order = torch.arange(flat_cls.numel(), device=flat_cls.device)
        protect = torch.zeros_like(self.valid)

        # Eq. 4: update matched slots; the last entry hitting a slot wins.
        if flat_match.any():
            slot_id = flat_cls[flat_match] * cap + flat_slot[flat_match]
            entry = order[flat_match]
            last = torch.full((self.num_classes * cap, ), -1, dtype=torch.long,
                              device=entry.device)
            last.scatter_reduce_(0, slot_id, entry, reduce='amax')
            hit = (last >= 0).nonzero().squeeze(1)
            src = last[hit]
            c, s = hit // cap, hit % cap
            self.values.data[c, s] = (self.gamma * flat_vals[src] +
                                      (1 - self.gamma) * self.values.data[c, s])
            self.written_values[c, s] = self.values.data[c, s].to(self.written_values)
            self.ages[c, s] = 0
            protect[c, s] = True

        # Eq. 3: append the others, after merging bitwise-equal new keys of a class.
        new = (~flat_match).nonzero().squeeze(1)
        if new.numel() == 0:
            return
        new = self._last_of_duplicates(new, flat_keys, flat_cls)
        cls_new = flat_cls[new]
        sorted_cls, perm = torch.sort(cls_new, stable=True)
        new = new[perm]
        counts = torch.bincount(sorted_cls, minlength=self.num_classes)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(new.numel(), device=new.device) - starts[sorted_cls]
        skip = (counts - cap).clamp_min(0)[sorted_cls]     # keep the last `capacity` per class
        keep = rank >= skip
        new, sorted_cls, rank = new[keep], sorted_cls[keep], (rank - skip)[keep]
        # Slot preference per class: free slots, then oldest, slots updated now last.
        big = torch.iinfo(torch.long).max
        priority = torch.where(self.valid, self.ages, torch.full_like(self.ages, big))
        priority = priority.masked_fill(protect, -1)
        slot_order = torch.sort(priority, dim=1, descending=True, stable=True).indices
        slots = slot_order[sorted_cls, rank]
        self.keys.data[sorted_cls, slots] = flat_keys[new]
        self.values.data[sorted_cls, slots] = flat_vals[new]
        self.written_values[sorted_cls, slots] = flat_vals[new].to(self.written_values)
        self.valid[sorted_cls, slots] = True
        self.ages[sorted_cls, slots] = 0
        if self._overwritten is None or self._overwritten.device != self.valid.device:
            self._overwritten = torch.zeros_like(self.valid)
        self._overwritten[sorted_cls, slots] = True

    @staticmethod
    def _last_of_duplicates(entries: torch.Tensor, keys: torch.Tensor,
                            classes: torch.Tensor) -> torch.Tensor:
        """Of bitwise-equal ``(class, key)`` entries keep the last; keeps ascending order."""
        if entries.numel() < 2:
            return entries
        k = keys[entries].double()
        gen = torch.Generator(device='cpu').manual_seed(0)
        proj = torch.randn(k.size(1), generator=gen, dtype=torch.float64).to(k.device)
        hashed = k @ proj
        perm = torch.sort(hashed, stable=True).indices
        perm = perm[torch.sort(classes[entries][perm], stable=True).indices]
        ks, cs = k[perm], classes[entries][perm]
        same = torch.zeros(perm.numel(), dtype=torch.bool, device=perm.device)
        same[1:] = (cs[1:] == cs[:-1]) & (ks[1:] == ks[:-1]).all(1)
        if not same.any():
            return entries
        run = torch.cumsum(~same, 0) - 1
        last = torch.full((int(run.max()) + 1, ), -1, dtype=torch.long, device=perm.device)
        last.scatter_reduce_(0, run, entries[perm], reduce='amax')
        return torch.sort(last).values

    # ------------------------------------------------------------- optimizer
    def pop_overwritten(self) -> Optional[torch.Tensor]:
        """``(C, S)`` mask of slots overwritten by appends since the last call, then cleared."""
        mask, self._overwritten = self._overwritten, None
        return mask

    def reset(self) -> None:
        """Empty the memory (keys, values, ages, validity, staged state)."""
        with torch.no_grad():
            self.keys.zero_()
            self.values.zero_()
        self.ages.zero_()
        self.valid.zero_()
        self.written_values.zero_()
        self._pending, self._read_mask, self._step_pending = [], None, False
        self._overwritten = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # checkpoints from before `written_values` existed: drift counts from the load
        key = prefix + 'written_values'
        if key not in state_dict and prefix + 'values' in state_dict:
            state_dict[key] = state_dict[prefix + 'values'].detach().clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    # ------------------------------------------------------------- statistics
    @torch.no_grad()
    def value_statistics(self) -> Dict[str, torch.Tensor]:
        """What the values hold and how far training moved them since they were written.

        Returns ``(C,)`` float64 tensors (NaN for a class without valid slots):
        ``value_mean`` (mean stored value per class), ``drift_mean``
        (mean of ``value - written_value``: the signed move by back-propagation since the
        last Eq. 3 / Eq. 4 write) and ``drift_abs_mean`` (mean of its absolute value).
        """
        values = self.values.detach().double()
        drift = values - self.written_values.double()

        def _per_class(x, mask):
            total = torch.where(mask, x, torch.zeros_like(x)).sum(1)
            count = mask.sum(1)
            out = total / count.clamp_min(1)
            return out.masked_fill(count == 0, float('nan')).cpu()

        return dict(value_mean=_per_class(values, self.valid),
                    drift_mean=_per_class(drift, self.valid),
                    drift_abs_mean=_per_class(drift.abs(), self.valid))


__all__ = ['EpisodicMemory', 'squared_distances']
