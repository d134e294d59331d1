"""LDAM loss with deferred re-weighting (LDAM-DRW, Cao et al., NeurIPS 2019)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine import dist
from mmpretrain.registry import MODELS

from .count_buffers import ClassCountsModule, checked_class_counts
from .global_mean import check_normalize_over, global_weighted_mean

_ZERO = 'their LDAM margin C / n^(1/4) and DRW weight (1 - beta) / (1 - beta^n) are infinite'


def _checked_counts(counts, who: str) -> torch.Tensor:
    return checked_class_counts(counts, who, _ZERO)


def ldam_margins(class_counts: torch.Tensor, max_margin: float) -> torch.Tensor:
    """LDAM margins (Cao et al., Eq. 12): ``m_c = K / n_c^(1/4)``, ``K`` so that
    ``max_c m_c = max_margin`` (the rarest class gets ``max_margin``).

    Returns ``(C,)`` float32.
    """
    counts = _checked_counts(class_counts, 'ldam_margins').to(torch.float64)
    inv = counts.pow(-0.25)
    return (inv * (float(max_margin) / inv.max())).float()


def drw_class_weights(class_counts: torch.Tensor, beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights by the effective number (Cui et al. 2019), as DRW uses them.

    ``E_c = (1 - beta^n_c) / (1 - beta)``, ``w_c = 1 / E_c`` normalised so that
    ``sum_c w_c = C``. ``beta = 0`` gives all ones. Returns ``(C,)`` float32.
    """
    counts = _checked_counts(class_counts, 'drw_class_weights').to(torch.float64)
    if not 0.0 <= float(beta) < 1.0:
        raise ValueError(f'drw_class_weights: beta must be in [0, 1), got {beta}.')
    effective = (1.0 - torch.pow(torch.full_like(counts, float(beta)), counts)) / (1.0 - beta)
    weights = 1.0 / effective
    return (weights * (counts.numel() / weights.sum())).float()


@MODELS.register_module()
class LDAMLoss(ClassCountsModule):
    """Label-distribution-aware margin loss with optional deferred re-weighting (LDAM-DRW).

    LDAM (Cao et al. 2019, Eq. 13) subtracts a class-dependent margin from the target logit of
    a *cosine* classifier before the scaled softmax:
    ``L = -log( e^{s(z_y - m_y)} / (e^{s(z_y - m_y)} + sum_{j != y} e^{s z_j}) )`` with
    ``m_c = K / n_c^(1/4)`` (Eq. 12) and ``K`` chosen so that the largest margin is
    ``max_margin``. DRW (Algorithm 1) multiplies each sample's loss by the class-balanced
    weight ``w_y`` (effective number, :func:`drw_class_weights`) once deferred re-weighting is
    switched on (:class:`~lt_plugins.engine.hooks.DRWHook` calls :meth:`set_drw_enabled`
    each epoch, e.g. from epoch 160 of 200); before that all weights are 1. With a weight on,
    the mean is the weighted mean ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` (PyTorch's weighted
    cross-entropy, as in the reference implementation).

    Under DDP (``normalize_over='global'``, the default) that mean runs over the batch of
    all ranks: ``sum_i w_{y_i} l_i`` of this rank over the all-reduced ``sum_i w_{y_i}`` of
    every rank, times the world size (DDP averages the gradients), so two ranks train exactly
    as one process on the concatenated batch; each rank's logged loss is its share (their
    mean is the global loss). ``normalize_over='rank'`` keeps the reference code's per-rank
    weighted mean (then DDP with DRW on differs from one process). Every rank must call the
    loss the same number of times (one all-reduce per call; the package's heads do).

    Input convention (RIDE's): ``cls_score`` is the *already scaled* logit ``s * cos(w, x)``
    (what :class:`~lt_plugins.models.heads.NormedLinearClsHead` and
    :class:`~lt_plugins.models.heads.RIDEHead` return), so the loss subtracts ``s * m_y``;
    ``scale`` must equal the head's scale. For an unnormalised linear head use ``scale=1``.

    The counts ``n_c`` come from ``ClassCountsHook`` through :meth:`set_class_counts` (or an
    explicit ``class_counts``, which wins) and live in buffers, so they travel with
    checkpoints.

    Args:
        max_margin (float): the largest margin ``max_c m_c``. Defaults to 0.5.
        scale (float): ``s``, the scale of the cosine logits. Defaults to 30.
        drw_beta (float): ``beta`` of the effective number. Defaults to 0.9999.
        drw_enabled (bool): initial DRW state (usually set by ``DRWHook``). Defaults to False.
        class_counts (Sequence[int], optional): explicit training counts.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
        normalize_over (str): ``'global'`` (weighted mean over all ranks' batch) or
            ``'rank'`` (per rank, as the reference code). Defaults to ``'global'``.
    """

    COUNT_BUFFERS = ('class_counts', 'margins', 'drw_weights')
    ZERO_COUNT_REASON = _ZERO

    def __init__(self,
                 max_margin: float = 0.5,
                 scale: float = 30.0,
                 drw_beta: float = 0.9999,
                 drw_enabled: bool = False,
                 class_counts: Optional[Sequence[int]] = None,
                 loss_weight: float = 1.0,
                 normalize_over: str = 'global') -> None:
        super().__init__()
        self.normalize_over = check_normalize_over(normalize_over, 'LDAMLoss')
        if max_margin < 0:
            raise ValueError(f'LDAMLoss: max_margin must be >= 0, got {max_margin}.')
        if scale <= 0:
            raise ValueError(f'LDAMLoss: scale must be > 0, got {scale}.')
        if not 0.0 <= drw_beta < 1.0:
            raise ValueError(f'LDAMLoss: drw_beta must be in [0, 1), got {drw_beta}.')
        self.max_margin = float(max_margin)
        self.scale = float(scale)
        self.drw_beta = float(drw_beta)
        self.drw_enabled = bool(drw_enabled)
        self.loss_weight = float(loss_weight)
        self._init_counts(class_counts)

    def _derive(self, counts: torch.Tensor) -> None:
        device = self.margins.device
        self.margins = ldam_margins(counts, self.max_margin).to(device)
        self.drw_weights = drw_class_weights(counts, self.drw_beta).to(device)

    def set_drw_enabled(self, enabled: bool) -> None:
        """Switch deferred re-weighting on (class-balanced weights) or off (weights 1)."""
        self.drw_enabled = bool(enabled)

    def class_weight(self) -> Optional[torch.Tensor]:
        """The per-class weights in use now (``None`` while DRW is off)."""
        return self.drw_weights if self.drw_enabled else None

    def margin_logits(self, cls_score: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``cls_score`` with ``s * m_y`` subtracted from each sample's target logit."""
        if self.margins.numel() == 0:
            raise RuntimeError(
                'LDAMLoss: missing class counts. Add dict(type=\'ClassCountsHook\') to '
                '`custom_hooks` (configs/_base_/default_runtime.py has it) or set '
                '`class_counts=[...]` in the loss config.')
        if cls_score.shape[-1] != self.margins.numel():
            raise ValueError(f'LDAMLoss: {cls_score.shape[-1]} logits per sample but '
                             f'{self.margins.numel()} class counts.')
        margin = self.margins.to(cls_score.dtype)[target] * self.scale
        onehot = F.one_hot(target, cls_score.shape[-1]).to(cls_score.dtype)
        return cls_score - onehot * margin.unsqueeze(1)

    def forward(self, cls_score: torch.Tensor, target: torch.Tensor,
                weight: Optional[torch.Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None, **kwargs) -> torch.Tensor:
        """Mean LDAM(-DRW) loss of ``(N, C)`` scaled logits and ``(N,)`` hard labels.

        ``avg_factor`` (passed by ``ClsHead``) is ignored: the mean is over the batch (of all
        ranks with ``normalize_over='global'``), weighted by the DRW weights when they are on.
        """
        if target.dim() != 1:
            raise ValueError('LDAMLoss needs hard labels (N,): remove Mixup/CutMix batch '
                             'augments from `model.train_cfg`.')
        if weight is not None:
            raise ValueError('LDAMLoss: per-sample weights are not supported; DRW sets the '
                             'class weights.')
        reduction = reduction_override or 'mean'
        logits = self.margin_logits(cls_score, target)
        class_weight = self.class_weight()
        if class_weight is not None:
            class_weight = class_weight.to(logits.dtype)
        if (reduction == 'mean' and self.normalize_over == 'global'
                and dist.get_world_size() > 1):
            per_sample = F.cross_entropy(logits, target, weight=class_weight, reduction='none')
            count = (class_weight[target].sum() if class_weight is not None else
                     logits.new_tensor(float(target.numel())))
            loss = global_weighted_mean(per_sample.sum(), count)
        else:
            loss = F.cross_entropy(logits, target, weight=class_weight, reduction=reduction)
        return self.loss_weight * loss
