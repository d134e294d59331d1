"""MBJ metric-learning head: CosFace batch loss + Circle loss on a prototype memory (MBJ-W)."""
import copy
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class MBJMetricHead(ClsHead):
    """Deep-metric-learning head of MBJ (prototype memory, MBJ-W; Sec. 3.3, Algorithm 2).

    ``L = L_batch + eta * L_memory``:

    * ``L_batch``: CosFace (Eq. 3) on the cosines between the L2-normalised feature ``x`` and
      the L2-normalised class weights ``W`` (``loss``, default ``CosFaceLoss`` with scale 64,
      margin 0.35 - the paper gives no values; these are CosFace's own, a common re-ID choice).
    * Each step, detached snapshots of all ``C`` normalised weight rows are offered to a
      :class:`RebalancedFIFOMemory` (label = row index; admission by Eq. 1, ``beta = 1.5``,
      size ``5 * C``); the rows are identical on every rank, so they are not all-gathered.
    * ``L_memory``: the Circle-style loss of Eq. 4 (``memory_loss``, ``CircleMemoryLoss``,
      factorised log-sum-exp form) of each batch feature against the memorised prototypes;
      0 for a sample whose class has no prototype in memory. ``eta = 1/15``.

    At test time the head is not a classifier: :meth:`predict` stores the L2-normalised
    feature as ``pred_feat`` in each data sample, which ``ReIDMetric`` compares for retrieval.
    ``memory_enabled=False`` gives the CosFace-only baseline.

    Args:
        num_classes (int): number of training identities ``C``.
        in_channels (int): feature dimension ``d``.
        loss (dict): batch loss on cosines. Defaults to ``CosFaceLoss(64, 0.35)``.
        memory (dict): memory bank config (``dim``, ``num_classes`` filled in, ``size``
            defaults to ``5 * C``).
        memory_loss (dict): Eq. 4 loss config. Defaults to ``CircleMemoryLoss(64, 0.35)``.
        eta (float): weight of ``L_memory``. Defaults to 1/15.
        memory_enabled (bool): initial state (``MBJMemorySwitchHook`` can flip it).
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 loss: dict = dict(type='CosFaceLoss', scale=64.0, margin=0.35),
                 memory: dict = dict(type='RebalancedFIFOMemory', beta=1.5),
                 memory_loss: dict = dict(type='CircleMemoryLoss', scale=64.0, margin=0.35),
                 eta: float = 1.0 / 15.0,
                 memory_enabled: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(loss=loss, topk=(1, ), cal_acc=False, init_cfg=init_cfg)
        if num_classes is None or num_classes < 1:
            raise ValueError(f'MBJMetricHead: num_classes must be >= 1, got {num_classes}.')
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.eta = float(eta)
        self.memory_enabled = bool(memory_enabled)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.in_channels))
        nn.init.xavier_uniform_(self.weight)
        cfg = copy.deepcopy(memory) if memory is not None else {}
        cfg.setdefault('type', 'RebalancedFIFOMemory')
        cfg.setdefault('dim', self.in_channels)
        cfg.setdefault('num_classes', self.num_classes)
        if cfg.get('per_class_slots') is None:
            cfg.setdefault('size', 5 * self.num_classes)
        self.memory = MODELS.build(cfg)
        self.memory_loss = (memory_loss if isinstance(memory_loss, nn.Module) else
                            MODELS.build(memory_loss))

    def set_class_counts(self, counts) -> None:
        """Check the training set's identity number (the memory receives the counts itself)."""
        n = torch.as_tensor(counts).numel()
        if n != self.num_classes:
            raise ValueError(
                f'MBJMetricHead: num_classes={self.num_classes} but the training set has {n} '
                f'identities: set `model.head.num_classes={n}`.')

    def set_memory_enabled(self, enabled: bool) -> None:
        self.memory_enabled = bool(enabled)

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` cosines between features and class prototypes."""
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).t()

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.cosine(self.pre_logits(feats))

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample], **kwargs) -> dict:
        x = self.pre_logits(feats)
        target = torch.cat([ds.gt_label for ds in data_samples]).to(x.device)
        cos = self.cosine(x)
        losses = dict(loss=self.loss_module(cos, target, avg_factor=cos.size(0), **kwargs))
        if not self.memory_enabled:
            return losses
        w = F.normalize(self.weight.detach(), dim=1)
        self.memory.enqueue(w, torch.arange(self.num_classes, device=w.device), gather=False)
        protos, proto_y = self.memory.get()
        losses['loss_memory'] = self.eta * self.memory_loss(x, target, protos.to(x.dtype), proto_y)
        return losses

    def predict(self, feats: Tuple[torch.Tensor],
                data_samples: Optional[List[Optional[DataSample]]] = None) -> List[DataSample]:
        """Store the L2-normalised retrieval feature as ``pred_feat``."""
        x = F.normalize(self.pre_logits(feats).float(), dim=1).detach()
        if data_samples is None:
            data_samples = [None] * x.shape[0]
        out = []
        for ds, f in zip(data_samples, x):
            ds = DataSample() if ds is None else ds
            ds.set_field(f, 'pred_feat')
            out.append(ds)
        return out
