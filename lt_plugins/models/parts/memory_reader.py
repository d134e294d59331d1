"""IEM's inference-time memory read as a part that attaches to any classifier (IEM Eq. 1-3)."""
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from lt_plugins.memory.episodic import READINGS, EpisodicMemory

WRITE_VALUES = ('prob', 'logit')


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
    ``'keys'`` (``'all'`` with every value 1: a soft kNN over the stored keys alone).

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
                 max_read_elements: int = 2**22) -> None:
        super().__init__()
        if write_value not in WRITE_VALUES:
            raise ValueError(f'EpisodicMemoryReader: write_value={write_value!r}; use one of '
                             f'{WRITE_VALUES}.')
        if inference_read not in READINGS:
            raise ValueError(f'EpisodicMemoryReader: inference_read={inference_read!r}; use '
                             f'one of {READINGS}.')
        weights = dict(classifier=0.5, memory=0.5)
        unknown = set(inference_weights or {}) - set(weights)
        if unknown:
            raise ValueError(f'EpisodicMemoryReader: unknown inference_weights keys '
                             f'{sorted(unknown)}; use \'classifier\' and \'memory\'.')
        weights.update(inference_weights or {})
        self.inference_weights = {k: float(v) for k, v in weights.items()}
        if min(self.inference_weights.values()) < 0 or sum(
                self.inference_weights.values()) <= 0:
            raise ValueError(f'EpisodicMemoryReader: inference_weights={weights} must be >= 0 '
                             'and not all 0.')
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        self.write_value = write_value
        self.inference_read = inference_read
        self.normalize_memory_scores = bool(normalize_memory_scores)
        self.memory = EpisodicMemory(self.num_classes, self.dim, capacity,
                                     num_neighbors=num_neighbors, delta=delta, gamma=gamma,
                                     dedupe_tol=dedupe_tol, merge_radius=merge_radius,
                                     merge_relative=merge_relative,
                                     max_read_elements=max_read_elements)
        self.memory.requires_grad_(False)

    @torch.no_grad()
    def write(self, feats: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Store this training batch: keys ``feats (N, d)``, values from ``logits`` at the
        true class ``target (N,)``; applied at once (collective under DDP: every rank calls it
        at the same point)."""
        if feats.dim() != 2 or feats.size(1) != self.dim:
            raise ValueError(f'EpisodicMemoryReader: features of shape {tuple(feats.shape)}, '
                             f'expected (N, {self.dim}); set the reader\'s `dim` to the '
                             'classifier\'s in_channels.')
        scores = logits.float().softmax(1) if self.write_value == 'prob' else logits.float()
        value = scores.gather(1, target.view(-1, 1)).squeeze(1)
        self.memory.write(feats.detach(), value, target)
        self.memory.flush()

    @torch.no_grad()
    def read(self, feats: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` per-class memory reads of ``feats`` (``inference_read``)."""
        read = self.memory.read_all(feats, self.inference_read)
        if self.normalize_memory_scores:
            read = read.clamp_min(0)
            read = read / read.sum(1, keepdim=True).clamp_min(1e-12)
        return read

    @torch.no_grad()
    def scores(self, feats: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` prediction scores: the weighted mean of the classifier's softmax and the
        memory read."""
        w = self.inference_weights
        score = w['classifier'] * logits.float().softmax(1)
        if w['memory']:
            score = score + w['memory'] * self.read(feats)
        return score / sum(w.values())

    def extra_repr(self) -> str:
        return (f'inference_read={self.inference_read!r}, inference_weights='
                f'{self.inference_weights}, write_value={self.write_value!r}')
