"""MBJ classification head: batch CE plus CE on a class-rebalanced memory (MBJ Eq. 2)."""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..parts.memory_term import (MEMORY_REDUCTIONS, VARIANTS, MBJMemoryTerm,  # noqa: F401
                                 multi_prototype_logits)


@MODELS.register_module()
class MBJClsHead(ClsHead):
    """Classification head with Memory-based Jitter (MBJ-F and the paper's ablations).

    Loss (MBJ Eq. 2): ``L = L_batch + eta * L_memory``. ``L_batch`` is the configured loss
    (CE) on the batch logits. Each training step first offers the detached batch features
    (the classifier's input) to a :class:`RebalancedFIFOMemory` (admission by Eq. 1, size
    ``5 * C`` by default), then ``L_memory`` is CE of the *same* classifier on the memorised
    features and their labels (Algorithm 1: enqueue, then both losses). The memory term only
    reaches the classifier (stored features are detached). An empty memory gives
    ``L_memory = 0``.

    Variants (``variant``):

    * ``'F'`` (MBJ-F, the paper's classification method): feature memory.
    * ``'W'`` (MBJ-W): a prototype memory of detached classifier weight rows (all C rows
      offered each step, Algorithm 2); ``L_memory`` is CE of the batch features against the
      memorised prototypes pooled per class by log-sum-exp (:func:`multi_prototype_logits`,
      our reading: the paper gives no classification form); samples whose class has no
      prototype in memory contribute 0.
    * ``'WF'`` (MBJ-WF): both memories, ``eta`` on each term.
    * ``'FR'`` (feature re-balancing without history, Sec. 4.5.2): the memory is emptied
      before each write, so it holds only the current batch's features admitted by Eq. 1.
    * ``'FR+RJ'``: FR plus Gaussian jitter ``rj_std * ||f|| / sqrt(d) * N(0, I)`` on the
      memorised features (randomness keyed by the memory's seed and step).

    ``memory_reduction`` sets what the summed memory CE is divided by: ``'mean'`` (default, the
    paper's "cross-entropy loss" over the memorised features: the number of valid entries),
    ``'capacity'`` (the memory size: a partly filled memory weighs proportionally less, so
    the first few entries of a fresh memory are not amplified by ``eta``), or ``'batch'`` (the
    batch size: each memorised feature weighs ``eta`` batch samples).

    The memory term is switched by ``memory_enabled`` (set by ``MBJMemorySwitchHook`` for the
    single-run schedule; two-phase use loads a CE checkpoint and leaves it True). While off,
    the head is a plain CE head and the memory is not written.

    The memory logic is :class:`~lt_plugins.models.parts.MBJMemoryTerm` (``memory_term``); this
    head is its preset on a linear/cosine classifier. The term's banks are registered on the
    head itself as ``memory`` / ``weight_memory`` (the term is held as a plain attribute, not a
    sub-module), so checkpoint keys and logged module names are those of earlier versions.

    Args:
        num_classes (int): number of classes ``C``.
        in_channels (int): feature dimension ``d``.
        classifier (str): ``'linear'`` (``Wx + b``) or ``'cosine'`` (``s * cos(W, x)``).
        cosine_scale (float): ``s`` of the cosine classifier. Defaults to 16.
        memory (dict): config of the memory bank; ``dim``/``num_classes`` are filled in and
            ``size`` defaults to ``5 * num_classes`` (``None`` with ``per_class_slots``).
            Defaults to ``dict(type='RebalancedFIFOMemory', beta=1.5)``.
        eta (float): weight of ``L_memory`` (Eq. 2; paper: 15).
        variant (str): one of ``'F', 'W', 'WF', 'FR', 'FR+RJ'``. Defaults to ``'F'``.
        memory_enabled (bool): initial state of the memory term. Defaults to True.
        rj_std (float): relative std of the FR+RJ jitter. Defaults to 0.1.
        memory_reduction (str): ``'mean'``, ``'capacity'`` or ``'batch'`` (see above).
        loss (dict): batch loss. Defaults to CE.
        topk, cal_acc, init_cfg: as in :class:`mmpretrain.models.heads.ClsHead`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 classifier: str = 'linear',
                 cosine_scale: float = 16.0,
                 memory: dict = dict(type='RebalancedFIFOMemory', beta=1.5),
                 eta: float = 15.0,
                 variant: str = 'F',
                 memory_enabled: bool = True,
                 rj_std: float = 0.1,
                 memory_reduction: str = 'mean',
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = dict(type='Normal', layer='Linear', std=0.01)):
        super().__init__(loss=loss, topk=topk, cal_acc=cal_acc, init_cfg=init_cfg)
        if num_classes is None or num_classes < 1:
            raise ValueError(f'MBJClsHead: num_classes must be >= 1, got {num_classes}.')
        if classifier not in ('linear', 'cosine'):
            raise ValueError(f'MBJClsHead: classifier={classifier!r}, choose \'linear\' or '
                             '\'cosine\'.')
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.classifier = classifier
        self.cosine_scale = float(cosine_scale)
        if classifier == 'linear':
            self.fc = nn.Linear(self.in_channels, self.num_classes)
        else:
            self.weight = nn.Parameter(torch.randn(self.num_classes, self.in_channels) * 0.01)
        term = MBJMemoryTerm(dim=self.in_channels, num_classes=self.num_classes, memory=memory,
                             eta=eta, variant=variant, memory_reduction=memory_reduction,
                             rj_std=rj_std, memory_enabled=memory_enabled, owner='MBJClsHead')
        # a plain attribute, not a sub-module: the banks below are the registered ones
        object.__setattr__(self, 'memory_term', term)
        self.memory = term.memories[0] if term.memories is not None else None
        self.weight_memory = term.weight_memory

    # -- the memory term's settings ---------------------------------------------------------
    @property
    def eta(self) -> float:
        return self.memory_term.eta

    @eta.setter
    def eta(self, value: float) -> None:
        self.memory_term.eta = float(value)

    @property
    def memory_enabled(self) -> bool:
        return self.memory_term.enabled

    @memory_enabled.setter
    def memory_enabled(self, value: bool) -> None:
        self.memory_term.set_memory_enabled(value)

    @property
    def variant(self) -> str:
        return self.memory_term.variant

    @property
    def memory_reduction(self) -> str:
        return self.memory_term.memory_reduction

    @property
    def rj_std(self) -> float:
        return self.memory_term.rj_std

    # -- class counts / switch --------------------------------------------------------------
    def set_class_counts(self, counts) -> None:
        """Check the training set's class number (the memories receive the counts themselves)."""
        n = torch.as_tensor(counts).numel()
        if n != self.num_classes:
            raise ValueError(
                f'MBJClsHead: num_classes={self.num_classes} but the training set has {n} '
                f'classes: set `model.head.num_classes={n}`.')

    def set_memory_enabled(self, enabled: bool) -> None:
        """Switch the memory term (and memory writes) on or off."""
        self.memory_term.set_memory_enabled(enabled)

    # -- forward ----------------------------------------------------------------------------
    def classifier_weight(self) -> torch.Tensor:
        return self.fc.weight if self.classifier == 'linear' else self.weight

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of features ``x (N, d)`` with the (shared) classifier."""
        if self.classifier == 'linear':
            return self.fc(x)
        return self.cosine_scale * F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).t()

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.classify(self.pre_logits(feats))

    # -- loss -------------------------------------------------------------------------------
    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample], **kwargs) -> dict:
        if 'gt_score' in data_samples[0]:
            raise ValueError('MBJClsHead needs hard labels: the memory stores (feature, label) '
                             'pairs. Remove batch augments (Mixup/CutMix) from '
                             '`model.train_cfg` for MBJ.')
        x = self.pre_logits(feats)
        target = torch.cat([ds.gt_label for ds in data_samples]).to(x.device)
        cls_score = self.classify(x)
        losses = self._get_loss(cls_score, data_samples, **kwargs)
        if not self.memory_enabled:
            return losses
        losses['loss_memory'] = self.memory_term(
            x, target, self.classify, weight=self.classifier_weight(),
            prototype_scores=self._prototype_scores)
        return losses

    def _prototype_scores(self, x: torch.Tensor, protos: torch.Tensor,
                          proto_y: torch.Tensor) -> torch.Tensor:
        """``(B, M)`` scores of the batch on memorised weight rows, by the classifier's rule."""
        if self.classifier == 'linear':
            sim = x @ protos.t()
            if self.fc.bias is not None:
                sim = sim + self.fc.bias.detach()[proto_y].view(1, -1)
            return sim
        return self.cosine_scale * F.normalize(x, dim=1) @ F.normalize(protos, dim=1).t()

    def _feature_memory_loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unweighted feature-memory loss (writes the batch first)."""
        return self.memory_term.feature_loss([x], target, [self.classify])

    def _weight_memory_loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unweighted prototype-memory loss (writes the weight rows first)."""
        return self.memory_term.weight_loss(x, target, self.classifier_weight(),
                                            self._prototype_scores)
