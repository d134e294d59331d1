"""IEM's inference-time memory read as a part that attaches to any classifier (IEM Eq. 1-3)."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from lt_plugins.memory.episodic import READINGS, EpisodicMemory

WRITE_VALUES = ('prob', 'logit')
ACTIVATIONS = ('softmax', 'sigmoid')
REGION_REDUCES = ('mean', 'max')
MEMORY_CONFIDENCES = ('memory_knn', 'memory_mass')


def class_values(logits: torch.Tensor, write_value: str = 'prob',
                 activation: str = 'softmax') -> torch.Tensor:
    """``(N, C)`` float32 values a write stores for each class (IEM Eq. 3, warm-up write).

    ``write_value='prob'``: the classifier's probabilities (``softmax`` over classes, or the
    per-class ``sigmoid`` of a multi-label classifier); ``'logit'``: the logits. A write of
    class ``y`` stores column ``y``.
    """
    if write_value == 'logit':
        return logits.float()
    if activation == 'sigmoid':
        return torch.sigmoid(logits.float())
    return logits.float().softmax(1)


def normalize_reads(read: torch.Tensor) -> torch.Tensor:
    """Per-class reads divided by their sum over classes (``normalize_memory_scores``): the
    ``C`` reads are independent values in ~[0, 1] and could outweigh a softmax."""
    read = read.clamp_min(0)
    return read / read.sum(1, keepdim=True).clamp_min(1e-12)


def average_scores(classifier_scores: torch.Tensor, classifier_weight: float,
                   reads: Sequence[Tuple[float, torch.Tensor]], total: float) -> torch.Tensor:
    """IEM's inference average ``(w_cls * s_cls + sum_j w_j read_j) / total``: the
    classifier's ``(N, C)`` probabilities and the weighted per-class memory reads (``total``
    is the sum of the weights)."""
    score = classifier_weight * classifier_scores
    for weight, read in reads:
        score = score + weight * read
    return score / total


@MODELS.register_module()
class EpisodicMemoryReader(nn.Module):
    """Per-class episodic memory read at inference and averaged with a classifier's softmax.

    The inference side of IEM (Zhu & Yang, CVPR 2020) without its memory loss: a
    :class:`~lt_plugins.memory.EpisodicMemory` keyed by the classifier's input features is
    read for every class (Eq. 1-2, one batched kNN) and the prediction is
    ``(w_cls * softmax(logits) + w_mem * read) / (w_cls + w_mem)``, as ``IEMHead.memory_scores``
    does with its global memory.

    Filling (our choice, the simpler of the two sound ones): **training writes**. Each training
    step (:meth:`write`) stores ``(feature, value)`` into the memory of the sample's class with
    ``value = softmax(logits)[y]`` (``write_value='prob'``, IEM's warm-up write, Eq. 3) or
    ``logits[y]`` (``'logit'``), and applies it at once (write, then ``flush``: no staged state
    is left between steps, so a checkpoint holds all of it and a resumed run continues
    exactly). Eq. 4 merges keys within ``dedupe_tol`` / ``merge_radius``; a full class evicts
    its oldest slot, so the memory holds the latest ``capacity`` features of each class. For a
    cRT model the stage-2 epochs run with the backbone frozen, so the memory ends up filled
    with the frozen backbone's features of the (re-sampled) training set, which is what a
    one-pass fill hook would compute, without a separate pass. Keys and values are not trained
    (no memory loss; their ``requires_grad`` is False, so DDP does not wait for them).

    Readings (``inference_read``, see ``EpisodicMemory.read_all``): ``'class'`` (Eq. 1,
    normalised per class), ``'all'`` (normalised by every class's nearest similarity mass) or
    ``'keys'`` (``'all'`` with every value 1: a soft kNN over the stored keys alone). Queries
    may be region sets ``(N, R, dim)`` (IEM's local memory): the ``R`` reads of a sample are
    combined by ``region_reduce``.

    ``IEMHead`` and ``IEMVectorHead`` are presets of this part: one reader per memory, built
    with ``trainable=True`` (IEM trains keys and values by its memory loss, Eq. 14-16,
    :meth:`regression_loss`, the head choosing the classes), writes staged
    (``write(..., apply=False)``, flushed by the head or ``IEMMemoryHook``) and
    ``state_owner=head``: the memory is registered on the head under
    ``state_name`` (``global_memory`` / ``local_memory``), so the heads' checkpoint keys are
    unchanged. :func:`class_values`, :func:`normalize_reads` and :func:`average_scores` are
    the pure functions the heads and the part share.

    Args:
        num_classes (int): number of classes ``C``.
        dim (int): key dimension (the classifier's input features).
        capacity (int): slots per class. Defaults to 512.
        num_neighbors (int): ``n`` of the reads. Defaults to 50.
        delta (float): Eq. 2. Defaults to 1e-3.
        gamma (float): Eq. 4 momentum. Defaults to 0.99.
        dedupe_tol (float): squared distance for "the key already exists". Defaults to 1e-6.
        merge_radius (float, optional): merge radius of Eq. 4 (see ``EpisodicMemory``).
        merge_relative (bool): ``merge_radius`` relative to the stored key's norm.
        write_value (str): ``'prob'`` or ``'logit'``. Defaults to ``'prob'``.
        inference_read (str): ``'class'``, ``'all'`` or ``'keys'``. Defaults to ``'class'``.
        inference_weights (dict, optional): ``classifier`` and ``memory`` weights (pick them on
            the validation split). Defaults to 0.5 / 0.5.
        normalize_memory_scores (bool): divide the per-class reads by their sum over classes
            before averaging. Defaults to False.
        max_read_elements (int): chunk size (distances) of the reads. Defaults to 2**22.
        region_reduce (str): ``'mean'`` or ``'max'`` over the ``R`` reads of a region-set
            query ``(N, R, dim)``. Defaults to ``'mean'``.
        trainable (bool): keep the memory's keys and values trainable (a memory loss in the
            owner trains them). Defaults to False (not trained; DDP does not wait for them).
        owner (str): name in error messages. Defaults to ``'EpisodicMemoryReader'``.
        state_owner (nn.Module, optional): the module on which the memory is registered, as
            ``state_name``; the part keeps a plain reference. Defaults to None (the part,
            as ``memory``).
        state_name (str): attribute name of the memory on ``state_owner``. Defaults to
            ``'memory'``.
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
                 write_value: str = 'prob',
                 inference_read: str = 'class',
                 inference_weights: Optional[Dict[str, float]] = None,
                 normalize_memory_scores: bool = False,
                 max_read_elements: int = 2**22,
                 region_reduce: str = 'mean',
                 trainable: bool = False,
                 owner: str = 'EpisodicMemoryReader',
                 state_owner: Optional[nn.Module] = None,
                 state_name: str = 'memory') -> None:
        super().__init__()
        self.owner = str(owner)
        if write_value not in WRITE_VALUES:
            raise ValueError(f'{owner}: write_value={write_value!r}; use one of '
                             f'{WRITE_VALUES}.')
        if inference_read not in READINGS:
            raise ValueError(f'{owner}: inference_read={inference_read!r}; use '
                             f'one of {READINGS}.')
        if region_reduce not in REGION_REDUCES:
            raise ValueError(f'{owner}: region_reduce={region_reduce!r}; use one of '
                             f'{REGION_REDUCES}.')
        weights = dict(classifier=0.5, memory=0.5)
        unknown = set(inference_weights or {}) - set(weights)
        if unknown:
            raise ValueError(f'{owner}: unknown inference_weights keys '
                             f'{sorted(unknown)}; use \'classifier\' and \'memory\'.')
        weights.update(inference_weights or {})
        self.inference_weights = {k: float(v) for k, v in weights.items()}
        if min(self.inference_weights.values()) < 0 or sum(
                self.inference_weights.values()) <= 0:
            raise ValueError(f'{owner}: inference_weights={weights} must be >= 0 '
                             'and not all 0.')
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        self.write_value = write_value
        self.inference_read = inference_read
        self.normalize_memory_scores = bool(normalize_memory_scores)
        self.region_reduce = region_reduce
        memory = EpisodicMemory(self.num_classes, self.dim, capacity,
                                num_neighbors=num_neighbors, delta=delta, gamma=gamma,
                                dedupe_tol=dedupe_tol, merge_radius=merge_radius,
                                merge_relative=merge_relative,
                                max_read_elements=max_read_elements)
        if not trainable:
            memory.requires_grad_(False)
        if state_owner is None:
            self.memory = memory
        else:  # registered on the owner (its keys); the part keeps a plain reference
            setattr(state_owner, state_name, memory)
            object.__setattr__(self, 'memory', memory)

    def _check_keys(self, feats: torch.Tensor) -> None:
        if feats.dim() not in (2, 3) or feats.size(-1) != self.dim:
            raise ValueError(f'{self.owner}: features of shape {tuple(feats.shape)}, '
                             f'expected (N, {self.dim}) or (N, R, {self.dim}); set the '
                             'reader\'s `dim` to the classifier\'s in_channels.')

    @torch.no_grad()
    def store(self, keys: torch.Tensor, values: torch.Tensor, classes: torch.Tensor,
              apply: bool = True) -> None:
        """Write ``(key, value)`` pairs into the memories of ``classes (N,)``: keys
        ``(N, dim)`` or ``(N, R, dim)`` (``R`` keys sharing the value of their sample),
        values ``(N,)``. ``apply`` flushes at once; False leaves the step staged for the
        owner's flush (collective under DDP either way: every rank calls it at the same
        point)."""
        self._check_keys(keys)
        self.memory.write(keys.detach(), values, classes)
        if apply:
            self.memory.flush()

    @torch.no_grad()
    def write(self, feats: torch.Tensor, logits: torch.Tensor, target: torch.Tensor,
              apply: bool = True) -> None:
        """Store this training batch: keys ``feats (N, d)`` (or ``(N, R, d)``), values from
        ``logits`` at the true class ``target (N,)`` (:func:`class_values`); applied at once
        unless ``apply=False`` (see :meth:`store`)."""
        self._check_keys(feats)
        value = class_values(logits, self.write_value).gather(1, target.view(-1, 1)).squeeze(1)
        self.store(feats, value, target, apply=apply)

    def reduce_regions(self, reads: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """Combine the reads of a region set over ``dim`` (``region_reduce``)."""
        return reads.mean(dim) if self.region_reduce == 'mean' else reads.amax(dim)

    def read_classes(self, queries: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Differentiable Eq. 1 read of the memory of ``classes[g]`` for query group ``g``
        (``(G, D)`` or ``(G, R, D)``, see ``EpisodicMemory.read``); region reads combined:
        ``(G,)``. In training mode it marks the slots read (applied at the next flush)."""
        reads = self.memory.read(queries, classes)
        return self.reduce_regions(reads, 1) if reads.dim() == 2 else reads

    def regression_loss(self, pos_queries: torch.Tensor, pos_classes: torch.Tensor,
                        neg_queries: torch.Tensor, neg_classes: torch.Tensor) -> torch.Tensor:
        """IEM's memory loss (Eq. 14-16): ``MSE(Read(M_c), 1)`` over the positive query
        groups and ``MSE(Read(M_ybar), 0)`` over the negative ones (one batched
        :meth:`read_classes`); an empty side contributes 0. Differentiable in the memory's
        keys and values (``trainable=True``) and in the queries."""
        reads = self.read_classes(torch.cat([pos_queries, neg_queries]),
                                  torch.cat([pos_classes, neg_classes]))
        pos, neg = reads[:pos_classes.numel()], reads[pos_classes.numel():]
        term = reads.new_zeros((), dtype=torch.float32)
        if pos.numel():
            term = term + F.mse_loss(pos, torch.ones_like(pos))
        if neg.numel():
            term = term + F.mse_loss(neg, torch.zeros_like(neg))
        return term

    def zero_loss(self) -> torch.Tensor:
        """An exact 0 that keeps the memory's keys and values in the graph (DDP expects every
        parameter to receive a gradient), for the steps without a memory loss (warm-up)."""
        return 0.0 * (self.memory.keys.sum() + self.memory.values.sum())

    @torch.no_grad()
    def read(self, feats: torch.Tensor, reading: Optional[str] = None,
             normalize: Optional[bool] = None) -> torch.Tensor:
        """``(N, C)`` per-class memory reads of ``feats`` (``(N, d)``, or ``(N, R, d)``
        combined over the regions); ``reading`` / ``normalize`` default to the part's
        ``inference_read`` / ``normalize_memory_scores``."""
        read = self.memory.read_all(feats, self.inference_read if reading is None else reading)
        if read.dim() == 3:
            read = self.reduce_regions(read, 1)
        if self.normalize_memory_scores if normalize is None else normalize:
            read = normalize_reads(read)
        return read

    @torch.no_grad()
    def scores(self, feats: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` prediction scores: the weighted mean of the classifier's softmax and the
        memory read."""
        w = self.inference_weights
        reads = [(w['memory'], self.read(feats))] if w['memory'] else []
        return average_scores(logits.float().softmax(1), w['classifier'], reads,
                              sum(w.values()))

    @torch.no_grad()
    def confidence(self, feats: torch.Tensor, kind: str) -> torch.Tensor:
        """``(N,)`` open-set confidence of ``feats (N, d)`` from the memory alone:
        ``'memory_knn'`` (the top class of the soft kNN over the stored keys,
        ``read_all(reading='keys')``) or ``'memory_mass'`` (``EpisodicMemory.
        nearest_similarity``: the mean Eq. 2 similarity of the ``n`` nearest keys)."""
        if kind == 'memory_knn':
            return self.memory.read_all(feats, 'keys').max(1).values
        if kind == 'memory_mass':
            return self.memory.nearest_similarity(feats)
        raise ValueError(f'{self.owner}: open confidence {kind!r}; use one of '
                         f'{MEMORY_CONFIDENCES}.')

    def extra_repr(self) -> str:
        return (f'inference_read={self.inference_read!r}, inference_weights='
                f'{self.inference_weights}, write_value={self.write_value!r}')
