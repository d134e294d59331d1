"""MBJ classification head: batch CE plus CE on a class-rebalanced memory (MBJ Eq. 2)."""
import copy
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from lt_plugins.memory.rebalanced_fifo import counter_generator

VARIANTS = ('F', 'W', 'WF', 'FR', 'FR+RJ')
MEMORY_REDUCTIONS = ('mean', 'capacity', 'batch')
_NEG = -1e9


def multi_prototype_logits(sim: torch.Tensor, proto_labels: torch.Tensor,
                           num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pool ``(B, M)`` prototype scores into ``(B, C)`` class scores by log-sum-exp.

    Class ``c``'s score is ``log sum_{m: label_m = c} exp(sim_m)`` (a softmax over all memorised
    prototypes, grouped by class). Returns the scores (``-1e9`` for classes absent from the
    memory) and the ``(C,)`` presence mask. Vectorised with ``scatter_reduce``.
    """
    B = sim.shape[0]
    idx = proto_labels.view(1, -1).expand(B, -1)
    cmax = sim.new_full((B, num_classes), _NEG).scatter_reduce(
        1, idx, sim, reduce='amax', include_self=True).detach()
    weights = torch.exp(sim - cmax.gather(1, idx))
    summed = sim.new_zeros((B, num_classes)).scatter_add(1, idx, weights)
    present = torch.bincount(proto_labels, minlength=num_classes) > 0
    logits = torch.where(present.view(1, -1), torch.log(summed.clamp_min(1e-30)) + cmax,
                         sim.new_full((), _NEG))
    return logits, present


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
        if variant not in VARIANTS:
            raise ValueError(f'MBJClsHead: variant={variant!r}, choose one of {VARIANTS}.')
        if memory_reduction not in MEMORY_REDUCTIONS:
            raise ValueError(f'MBJClsHead: memory_reduction={memory_reduction!r}, choose one '
                             f'of {MEMORY_REDUCTIONS}.')
        self.memory_reduction = memory_reduction
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.classifier = classifier
        self.cosine_scale = float(cosine_scale)
        self.eta = float(eta)
        self.variant = variant
        self.memory_enabled = bool(memory_enabled)
        self.rj_std = float(rj_std)
        if classifier == 'linear':
            self.fc = nn.Linear(self.in_channels, self.num_classes)
        else:
            self.weight = nn.Parameter(torch.randn(self.num_classes, self.in_channels) * 0.01)
        self.memory = self._build_memory(memory) if variant != 'W' else None
        self.weight_memory = (self._build_memory(memory, seed_offset=1)
                              if variant in ('W', 'WF') else None)

    def _build_memory(self, cfg: dict, seed_offset: int = 0) -> nn.Module:
        cfg = copy.deepcopy(cfg) if cfg is not None else dict(type='RebalancedFIFOMemory')
        cfg.setdefault('type', 'RebalancedFIFOMemory')
        cfg.setdefault('dim', self.in_channels)
        cfg.setdefault('num_classes', self.num_classes)
        if cfg.get('num_classes') != self.num_classes:
            raise ValueError(f'MBJClsHead: memory.num_classes={cfg["num_classes"]} differs from '
                             f'head num_classes={self.num_classes}; drop it from `memory`.')
        if cfg.get('per_class_slots') is None:
            cfg.setdefault('size', 5 * self.num_classes)
        else:
            cfg.setdefault('size', None)
        cfg['seed'] = cfg.get('seed', 0) + seed_offset
        return MODELS.build(cfg)

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
        self.memory_enabled = bool(enabled)

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
        mem_loss = cls_score.sum() * 0.0
        if self.memory is not None:
            mem_loss = mem_loss + self._feature_memory_loss(x, target)
        if self.weight_memory is not None:
            mem_loss = mem_loss + self._weight_memory_loss(x, target)
        losses['loss_memory'] = self.eta * mem_loss
        return losses

    def _feature_memory_loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bank = self.memory
        if self.variant in ('FR', 'FR+RJ'):
            bank.reset()
            bank.enqueue(x, target, gather=False)  # FR: current (local) batch only
        else:
            bank.enqueue(x, target)
        mem_x, mem_y = bank.get()
        if mem_y.numel() == 0:
            return x.sum() * 0.0
        if self.variant == 'FR+RJ':
            gen = counter_generator(bank.seed + 7919, int(bank.step))
            noise = torch.randn(mem_x.shape, generator=gen).to(mem_x.device)
            scale = mem_x.norm(dim=1, keepdim=True) / mem_x.shape[1] ** 0.5
            mem_x = mem_x + self.rj_std * scale * noise
        mem_x = mem_x.to(x.dtype)
        total = F.cross_entropy(self.classify(mem_x).float(), mem_y, reduction='sum')
        denom = dict(mean=mem_y.numel(), capacity=bank.size, batch=x.shape[0])
        return total / denom[self.memory_reduction]

    def _weight_memory_loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bank = self.weight_memory
        w = self.classifier_weight()
        bank.enqueue(w, torch.arange(self.num_classes, device=w.device), gather=False)
        protos, proto_y = bank.get()
        if proto_y.numel() == 0:
            return x.sum() * 0.0
        protos = protos.to(x.dtype)
        if self.classifier == 'linear':
            sim = x @ protos.t()
            if self.fc.bias is not None:
                sim = sim + self.fc.bias.detach()[proto_y].view(1, -1)
        else:
            sim = self.cosine_scale * F.normalize(x, dim=1) @ F.normalize(protos, dim=1).t()
        logits, present = multi_prototype_logits(sim.float(), proto_y, self.num_classes)
        per_sample = F.cross_entropy(logits, target, reduction='none')
        per_sample = torch.where(present[target], per_sample, torch.zeros_like(per_sample))
        return per_sample.mean()
