"""Logit-adjusted cross-entropy (Menon et al., ICLR 2021, Eq. 10)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from .count_buffers import ClassCountsModule, log_class_prior
from .global_mean import global_weighted_mean


def prior_adjusted_ce(logits: torch.Tensor, offset: torch.Tensor, target: torch.Tensor,
                      weight: Optional[torch.Tensor] = None,
                      class_weight: Optional[torch.Tensor] = None,
                      reduction: str = 'mean',
                      avg_factor: Optional[float] = None,
                      normalize_over: str = 'global') -> torch.Tensor:
    """Cross-entropy of ``logits + offset`` (``offset``: ``(C,)``), computed in float32.

    ``target`` is ``(N,)`` class indices or ``(N, C)`` soft labels (Mixup / CutMix / label
    smoothing). ``weight``: per-sample weights; ``class_weight``: per-class weights of hard
    labels, with the weighted mean ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` (PyTorch's, as DRW).
    ``mean`` divides by ``avg_factor`` when given (and no class weight), else by ``N``.
    A class-weighted mean runs over the batch of all ranks under DDP
    (``normalize_over='global'``, see :func:`~.global_mean.global_weighted_mean`) or over
    this rank's batch (``'rank'``).
    """
    z = logits.float() + offset.to(logits.device, torch.float32)
    if target.dim() == 1:
        loss = F.cross_entropy(z, target, reduction='none')
        denom = None
        if class_weight is not None:
            w = class_weight.to(z.device, torch.float32)[target]
            loss = loss * w
            denom = w.sum()
    else:
        if class_weight is not None:
            raise ValueError('a class-weighted loss needs hard labels (N,): remove Mixup/CutMix '
                             'from `model.train_cfg`.')
        loss = -(target.float() * F.log_softmax(z, dim=1)).sum(dim=1)
        denom = None
    if weight is not None:
        loss = loss * weight.float().reshape(-1)
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if reduction != 'mean':
        raise ValueError(f"reduction={reduction!r}: choose 'mean', 'sum' or 'none'.")
    if denom is None:
        denom = avg_factor if avg_factor is not None else max(loss.numel(), 1)
        return loss.sum() / denom
    if normalize_over == 'global':
        return global_weighted_mean(loss.sum(), denom)
    return loss.sum() / denom


@MODELS.register_module()
class LogitAdjustedLoss(ClassCountsModule):
    """Logit-adjusted softmax cross-entropy: CE on ``z + tau * log pi`` (Menon et al. 2021).

    ``L = -log( e^{z_y + tau log pi_y} / sum_j e^{z_j + tau log pi_j} )`` (Eq. 10), with the
    training prior ``pi_c = n_c / sum_j n_j``. Training on the adjusted logits makes the raw
    logits ``z`` estimate the balanced posterior, so prediction is the plain ``argmax z`` (the
    head predicts as usual; nothing changes at inference). ``tau = 1`` is Fisher-consistent for
    the balanced error and equals :class:`BalancedSoftmaxLoss`; ``tau = 0`` is plain CE.

    The counts ``n_c`` come from ``ClassCountsHook`` through :meth:`set_class_counts` (or an
    explicit ``class_counts``, which wins), as for ``LDAMLoss``; they live in the
    ``class_counts`` buffer (the checkpoint carries them) and the log-prior is computed from
    them at each call, so ``tau`` is always the config's. Classes without training samples
    are refused (their log-prior is ``-inf``). Hard labels or soft labels (Mixup / CutMix).

    Args:
        tau (float): the adjustment strength. Defaults to 1.0.
        class_counts (Sequence[int], optional): explicit training counts.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    ZERO_COUNT_REASON = 'their log-prior is -inf'

    def __init__(self, tau: float = 1.0, class_counts: Optional[Sequence[int]] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.tau = float(tau)
        self.loss_weight = float(loss_weight)
        self._init_counts(class_counts)

    def logit_offset(self, num_classes: int) -> torch.Tensor:
        """``(C,)`` what is added to the logits in training: ``tau * log pi``."""
        # the counts were checked (all >= 1) when they arrived: no device sync here
        return self.tau * log_class_prior(self.require_counts(num_classes), check=False)

    def adjusted_logits(self, cls_score: torch.Tensor) -> torch.Tensor:
        """The logits the loss sees, ``z + offset`` (float32)."""
        return cls_score.float() + self.logit_offset(cls_score.shape[-1]).to(cls_score.device)

    def forward(self, cls_score: torch.Tensor, target: torch.Tensor,
                weight: Optional[torch.Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None, **kwargs) -> torch.Tensor:
        """Loss of ``(N, C)`` logits and ``(N,)`` labels (or ``(N, C)`` soft labels)."""
        offset = self.logit_offset(cls_score.shape[-1])
        loss = prior_adjusted_ce(cls_score, offset, target, weight=weight,
                                 reduction=reduction_override or 'mean', avg_factor=avg_factor)
        return self.loss_weight * loss
