"""IEM read-write classification head (Zhu & Yang, CVPR 2020, Sec. 3.3, Eq. 14-16)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from lt_plugins.memory.episodic import READINGS, EpisodicMemory
from lt_plugins.models.parts.memory_reader import (REGION_REDUCES, EpisodicMemoryReader,
                                                   average_scores)

WARMUP_VALUES = ('prob', 'logit')
INFERENCE_PARTS = ('classifier', 'global_memory', 'local_memory')
OPEN_CONFIDENCES = ('score', 'memory_knn', 'memory_mass')


@MODELS.register_module()
class IEMHead(ClsHead):
    """Linear classifier plus one global and one local episodic memory per class (IEM).

    Features come from :class:`RSANeck` as ``(gap, regions, weights, attended)``; the
    classifier reads ``attended``, the global memory is keyed by ``gap`` and the local memory
    by the region features (all ``R`` of them, or with ``local_regions=k`` the ``k`` regions
    with the largest RSA attention weights of each image). A single pooled tensor (e.g.
    ``GlobalAveragePooling`` neck) is accepted when the local memory is off; it serves as
    classifier input and global key.

    Cost note: every region is a local query and a local key. A 7x7 (ImageNet) or 8x8
    (CIFAR ResNet-32) map has 169 / 225 regions up to 2x2, so reading all of them against
    ``C x capacity`` slots at inference costs ``B * R * C * capacity * dim`` multiply-adds
    (CIFAR-100, capacity 512: ~94 GFLOP per 128 images, ten times the backbone). The paper
    does not say how many regions it stores; ``local_regions`` bounds the cost and keeps the
    regions RSA attends to most (the configs use 16).

    Training step (``loss``):

    1. apply the previous step's staged memory update (if ``IEMMemoryHook`` did not already);
    2. ``CE(y, logits)``;
    3. after ``warmup_iters`` training steps, ``MSE(Read(M_y), 1) + MSE(Read(M_ybar), 0)``
       (Eq. 14-16) for each enabled memory, ``ybar`` the highest-scoring wrong class; the
       ``R`` region reads of an image are combined by ``region_reduce`` before the MSE;
    4. stage writes of ``(key, v)`` with ``v = softmax(logits)[y]`` (``warmup_value='prob'``)
       or ``logits[y]`` (``'logit'``) into the memories of class ``y`` -- during warm-up and,
       with ``write_after_warmup``, afterwards.

    Inference (``predict``) reads every class's memories (one batched kNN per memory) and
    returns ``sum_j w_j s_j / sum_j w_j`` over the classifier's softmax and the per-class
    memory scores of the enabled memories (``inference_weights``).

    Options the paper leaves open, with the default reading first:
    ``warmup_value`` ('prob': values are regressed to 1/0, so probabilities), whether the memory
    loss reaches the backbone (``memory_loss_to_backbone=False``: "the MSE loss ... is used to
    calculate the gradient to update all memory blocks"), whether writes continue after
    warm-up (``write_after_warmup=True``: appends, dedupe and age eviction are only meaningful
    if the memory keeps being written), ``region_reduce`` ('mean') and ``delta`` (1e-3).
    Ablations of Table 5: ``use_local_memory=False``, ``use_global_memory=False``, and
    ``RSANeck(attention=False)`` for "w/o RSA".

    Parts: each memory is an :class:`~lt_plugins.models.parts.EpisodicMemoryReader`
    (``global_reader`` / ``local_reader``, plain attributes, not sub-modules) built with
    ``trainable=True`` and ``state_owner=self``: the memories stay registered as
    ``global_memory`` / ``local_memory`` (the checkpoint keys), and the readers do the writes
    (staged), the memory loss's reads with their region reduction and its MSE terms, the
    inference reads with their normalisation, the score average and the memory open-set
    confidences. The hard-negative choice, the warm-up schedule and the feature unpacking
    stay in the head.

    Args:
        num_classes (int): number of classes.
        in_channels (int): classifier input dimension (``RSANeck.out_channels``).
        global_channels (int, optional): global key dimension (the backbone's channels);
            defaults to ``in_channels``.
        local_channels (int, optional): region feature dimension; defaults to
            ``global_channels``.
        use_global_memory (bool): Defaults to True.
        use_local_memory (bool): Defaults to True.
        global_capacity (int): slots per class of the global memory. Defaults to 512.
        local_capacity (int): slots per class of the local memory. Defaults to 512.
        num_neighbors (int): ``n`` of the reads. Defaults to 50.
        delta (float): Eq. 2. Defaults to 1e-3.
        gamma (float): Eq. 4 momentum. Defaults to 0.99.
        dedupe_tol (float): squared distance for "the key already exists". Defaults to 1e-6.
        merge_radius (float, optional): Euclidean radius within which a written key merges
            into the nearest stored key of its class (Eq. 4's value update) instead of
            taking a slot (see :class:`EpisodicMemory`). Defaults to None (dedupe_tol only).
        merge_relative (bool): ``merge_radius`` relative to the stored key's norm. Defaults
            to False.
        warmup_iters (int): training steps that only write. Defaults to 100.
        warmup_value (str): 'prob' or 'logit'. Defaults to 'prob'.
        memory_loss_to_backbone (bool): let the MSE gradient reach the queries (neck and
            backbone). Defaults to False.
        write_after_warmup (bool): Defaults to True.
        region_reduce (str): 'mean' or 'max' over region reads. Defaults to 'mean'.
        local_regions (int, optional): keep the this many most-attended regions per image
            for the local memory (reads and writes); None keeps all (the paper's reading).
            Defaults to None.
        memory_loss_weight (float): weight of each memory's MSE terms. Defaults to 1.
        inference_weights (dict): weights of 'classifier', 'global_memory', 'local_memory'.
            Defaults to 0.5 / 0.25 / 0.25 (classifier and memories count equally).
        normalize_memory_scores (bool): divide each memory's per-class scores by their sum
            over classes before averaging (the softmax sums to 1, the C memory scores are
            independent values in ~[0, 1] and can outweigh it). False averages them as
            read (the paper). Defaults to False.
        inference_read (str): how :meth:`memory_scores` reads each memory: 'class' (Eq. 1,
            normalised per class, the paper), 'all' (normalised by the similarity mass of all
            classes' nearest slots, so a class far from the query scores low) or 'keys'
            ('all' with every value taken as 1: a soft kNN over the stored keys); see
            ``EpisodicMemory.read_all``. Training reads are always Eq. 1. Defaults to 'class'.
        max_read_elements (int): chunk size (distances) of inference reads. Defaults to 2**22.
        open_confidence (str, optional): also write an open-set confidence to each predicted
            data sample's ``open_confidence`` field (read by ``OpenSetShotAccuracy(
            confidence_key='open_confidence')``): 'score' (the maximum of the final scores,
            what ``confidence_key=None`` uses anyway), 'memory_knn' (the maximum over classes
            of the global memory read as a soft kNN over its keys, ``read_all(reading=
            'keys')``: the share of the nearest slots' similarity mass held by the top class)
            or 'memory_mass' (``EpisodicMemory.nearest_similarity``: the mean Eq. 2
            similarity of the ``n`` nearest stored global keys of any class -- low for a
            query far from everything stored). None writes nothing. Defaults to None.
        loss (dict): classification loss. Defaults to CrossEntropyLoss.
        init_cfg (dict, optional): Defaults to ``Normal(std=0.01)`` on the classifier.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 global_channels: Optional[int] = None,
                 local_channels: Optional[int] = None,
                 use_global_memory: bool = True,
                 use_local_memory: bool = True,
                 global_capacity: int = 512,
                 local_capacity: int = 512,
                 num_neighbors: int = 50,
                 delta: float = 1e-3,
                 gamma: float = 0.99,
                 dedupe_tol: float = 1e-6,
                 merge_radius: Optional[float] = None,
                 merge_relative: bool = False,
                 warmup_iters: int = 100,
                 warmup_value: str = 'prob',
                 memory_loss_to_backbone: bool = False,
                 write_after_warmup: bool = True,
                 region_reduce: str = 'mean',
                 local_regions: Optional[int] = None,
                 memory_loss_weight: float = 1.0,
                 inference_weights: Optional[Dict[str, float]] = None,
                 normalize_memory_scores: bool = False,
                 inference_read: str = 'class',
                 max_read_elements: int = 2**22,
                 open_confidence: Optional[str] = None,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 init_cfg: Optional[dict] = dict(type='Normal', layer='Linear', std=0.01),
                 **kwargs) -> None:
        super().__init__(loss=loss, init_cfg=init_cfg, **kwargs)
        if warmup_value not in WARMUP_VALUES:
            raise ValueError(f'IEMHead: warmup_value={warmup_value!r}; use one of '
                             f'{WARMUP_VALUES}.')
        if region_reduce not in REGION_REDUCES:
            raise ValueError(f'IEMHead: region_reduce={region_reduce!r}; use one of '
                             f'{REGION_REDUCES}.')
        weights = dict(classifier=0.5, global_memory=0.25, local_memory=0.25)
        if inference_read not in READINGS:
            raise ValueError(f'IEMHead: inference_read={inference_read!r}; use one of '
                             f'{READINGS}.')
        if open_confidence is not None and open_confidence not in OPEN_CONFIDENCES:
            raise ValueError(f'IEMHead: open_confidence={open_confidence!r}; use one of '
                             f'{OPEN_CONFIDENCES} or None.')
        if open_confidence in ('memory_knn', 'memory_mass') and not use_global_memory:
            raise ValueError(f'IEMHead: open_confidence={open_confidence!r} reads the global '
                             'memory; set use_global_memory=True or open_confidence=\'score\'.')
        self.open_confidence = open_confidence
        unknown = set(inference_weights or {}) - set(INFERENCE_PARTS)
        if unknown:
            raise ValueError(f'IEMHead: unknown inference_weights keys {sorted(unknown)}; '
                             f'use {INFERENCE_PARTS}.')
        weights.update(inference_weights or {})
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.global_channels = int(global_channels or in_channels)
        self.local_channels = int(local_channels or self.global_channels)
        self.use_global_memory = use_global_memory
        self.use_local_memory = use_local_memory
        self.warmup_iters = int(warmup_iters)
        self.warmup_value = warmup_value
        self.memory_loss_to_backbone = memory_loss_to_backbone
        self.write_after_warmup = write_after_warmup
        self.region_reduce = region_reduce
        if local_regions is not None and local_regions < 1:
            raise ValueError(f'IEMHead: local_regions={local_regions} must be >= 1 or None.')
        self.local_regions = local_regions
        self.memory_loss_weight = float(memory_loss_weight)
        self.inference_weights = {
            'classifier': float(weights['classifier']),
            'global_memory': float(weights['global_memory']) if use_global_memory else 0.0,
            'local_memory': float(weights['local_memory']) if use_local_memory else 0.0}
        self.normalize_memory_scores = normalize_memory_scores
        self.inference_read = inference_read
        if sum(self.inference_weights.values()) <= 0:
            raise ValueError('IEMHead: inference_weights of the enabled parts sum to 0.')

        self.fc = nn.Linear(self.in_channels, self.num_classes)
        memory = dict(num_neighbors=num_neighbors, delta=delta, gamma=gamma,
                      dedupe_tol=dedupe_tol, merge_radius=merge_radius,
                      merge_relative=merge_relative,
                      max_read_elements=max_read_elements, write_value=warmup_value,
                      inference_read=inference_read,
                      normalize_memory_scores=normalize_memory_scores,
                      region_reduce=region_reduce, trainable=True,
                      owner=type(self).__name__, state_owner=self)
        for name, enabled, dim, capacity in (
                ('global_memory', use_global_memory, self.global_channels, global_capacity),
                ('local_memory', use_local_memory, self.local_channels, local_capacity)):
            reader = None
            if enabled:  # registers the memory on the head as `name`
                reader = EpisodicMemoryReader(self.num_classes, dim, capacity,
                                              state_name=name, **memory)
            else:
                setattr(self, name, None)
            object.__setattr__(self, name.replace('_memory', '_reader'), reader)
        self.register_buffer('num_steps', torch.zeros((), dtype=torch.long))

    # ----------------------------------------------------------------- utils
    def memories(self) -> List[Tuple[str, EpisodicMemory]]:
        """``[(name, memory)]`` of the enabled memories."""
        return [(name, mem) for name, mem in (('global_memory', self.global_memory),
                                              ('local_memory', self.local_memory))
                if mem is not None]

    def readers(self) -> List[Tuple[str, EpisodicMemoryReader]]:
        """``[(memory name, reader part)]`` of the enabled memories."""
        return [(name, reader) for name, reader in (('global_memory', self.global_reader),
                                                    ('local_memory', self.local_reader))
                if reader is not None]

    def memory_bytes(self, optimizer_copies: int = 0) -> int:
        """Bytes of all memories (+ ``optimizer_copies`` of their parameters, Adam: 2)."""
        return sum(mem.memory_bytes(optimizer_copies) for _, mem in self.memories())

    def flush_memories(self) -> bool:
        """Apply the staged memory step of every memory (collective under DDP)."""
        applied = [mem.flush() for _, mem in self.memories()]
        return any(applied)

    def _unpack(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]]
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
        """``(gap, regions or None, attended)`` from the neck output, regions selected."""
        if isinstance(feats, torch.Tensor):
            feats = (feats, )
        weights = None
        if len(feats) >= 4 and feats[-3].dim() == 3:      # RSANeck: gap, regions, w, att
            gap, regions, weights, attended = feats[-4:]
        elif len(feats) >= 3 and feats[-2].dim() == 3:    # gap, regions, attended
            gap, regions, attended = feats[-3:]
        else:
            gap, regions, attended = feats[-1], None, feats[-1]
        if attended.dim() != 2 or attended.size(1) != self.in_channels:
            raise ValueError(
                f'IEMHead: in_channels={self.in_channels} but the neck gives features of '
                f'shape {tuple(attended.shape)}; set `head.in_channels` to the neck\'s '
                '`out_channels` (RSANeck: its in_channels unless out_channels is set).')
        if self.global_memory is not None and gap.size(1) != self.global_channels:
            raise ValueError(
                f'IEMHead: global_channels={self.global_channels} but the pooled feature has '
                f'{gap.size(1)} dims; set `head.global_channels` to the backbone channels.')
        if self.local_memory is not None:
            if regions is None:
                raise ValueError(
                    'IEMHead: use_local_memory=True needs region features; use '
                    '`neck=dict(type=\'RSANeck\', ...)` or set `head.use_local_memory=False`.')
            if regions.size(2) != self.local_channels:
                raise ValueError(
                    f'IEMHead: local_channels={self.local_channels} but the region features '
                    f'have {regions.size(2)} dims; set `head.local_channels`.')
            if self.local_regions is not None and regions.size(1) > self.local_regions:
                if weights is None:
                    raise ValueError('IEMHead: local_regions needs the RSANeck attention '
                                     'weights (neck output (gap, regions, weights, attended)).')
                top = weights.detach().topk(self.local_regions, dim=1).indices
                regions = regions.gather(1, top.unsqueeze(-1).expand(-1, -1, regions.size(2)))
        return gap, regions, attended

    def pre_logits(self, feats) -> torch.Tensor:
        """The classifier input (the attended global vector)."""
        return self._unpack(feats)[2]

    def forward(self, feats) -> torch.Tensor:
        """Classifier logits ``(B, C)``."""
        return self.fc(self.pre_logits(feats))

    # ----------------------------------------------------------------- train
    def loss(self, feats, data_samples: List[DataSample], **kwargs) -> dict:
        """CE + memory MSE terms (Eq. 16); stages this step's memory writes."""
        self.flush_memories()
        gap, regions, attended = self._unpack(feats)
        logits = self.fc(attended)
        target = torch.cat([ds.gt_label for ds in data_samples]).to(logits.device)
        losses = {'loss': self.loss_module(logits, target, avg_factor=logits.size(0),
                                           **kwargs)}
        queries = {'global_memory': gap.unsqueeze(1),
                   'local_memory': regions}
        warm = bool(self.num_steps < self.warmup_iters)
        if not warm:
            masked = logits.detach().scatter(1, target.view(-1, 1), float('-inf'))
            hard_negative = masked.argmax(1)                      # ybar of Eq. 15
        for name, reader in self.readers():
            if warm:  # exactly zero, the memory parameters kept in the graph
                losses[f'loss_{name}'] = reader.zero_loss()
                continue
            query = queries[name] if self.memory_loss_to_backbone else queries[name].detach()
            losses[f'loss_{name}'] = self.memory_loss_weight * reader.regression_loss(
                query, target, query, hard_negative)
        if warm or self.write_after_warmup:
            for name, reader in self.readers():   # staged: flushed next step or by the hook
                reader.write(queries[name].detach(), logits.detach(), target, apply=False)
        self.num_steps += 1
        return losses

    # ------------------------------------------------------------- inference
    @torch.no_grad()
    def memory_scores(self, feats) -> torch.Tensor:
        """Combined per-class scores ``(B, C)`` (classifier softmax and memory reads)."""
        gap, regions, attended = self._unpack(feats)
        weights = self.inference_weights
        queries = {'global_memory': gap, 'local_memory': regions}
        reads = [(weights[name], reader.read(queries[name], self.inference_read,
                                             self.normalize_memory_scores))
                 for name, reader in self.readers() if weights[name]]
        return average_scores(self.fc(attended).float().softmax(1), weights['classifier'],
                              reads, sum(weights.values()))

    def predict(self, feats, data_samples: Optional[List[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """Predictions from :meth:`memory_scores`; no memory state changes."""
        scores = self.memory_scores(feats)
        labels = scores.argmax(dim=1, keepdim=True)
        confidence = self.open_set_confidence(feats, scores)
        if data_samples is None:
            data_samples = [None] * scores.size(0)
        out = []
        for i, (data_sample, score, label) in enumerate(zip(data_samples, scores, labels)):
            data_sample = DataSample() if data_sample is None else data_sample
            data_sample.set_pred_score(score).set_pred_label(label)
            if confidence is not None:
                data_sample.set_field(confidence[i], 'open_confidence')
            out.append(data_sample)
        return out

    @torch.no_grad()
    def open_set_confidence(self, feats, scores: torch.Tensor) -> Optional[torch.Tensor]:
        """``(B,)`` open-set confidence chosen by ``open_confidence`` (None: not asked for)."""
        if self.open_confidence is None:
            return None
        if self.open_confidence == 'score':
            return scores.max(1).values
        return self.global_reader.confidence(self._unpack(feats)[0], self.open_confidence)


__all__ = ['IEMHead']
