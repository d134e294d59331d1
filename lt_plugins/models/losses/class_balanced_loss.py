"""Class-balanced softmax cross-entropy by the effective number (Cui et al., CVPR 2019)."""
from typing import Optional, Sequence

import torch
from mmpretrain.registry import MODELS

from .count_buffers import ClassCountsModule
from .global_mean import check_normalize_over
from .ldam_loss import drw_class_weights
from .logit_adjusted_loss import prior_adjusted_ce


@MODELS.register_module()
class ClassBalancedLoss(ClassCountsModule):
    """Softmax cross-entropy weighted per class by the inverse effective number.

    ``w_c = (1 - beta) / (1 - beta^n_c)``, normalised so that ``sum_c w_c = C``
    (:func:`~lt_plugins.models.losses.ldam_loss.drw_class_weights`, the weights DRW switches
    on); the batch loss is the weighted mean ``sum_i w_{y_i} l_i / sum_i w_{y_i}``. The
    class-balanced loss of weight balancing's second stage (Alshammari et al. 2022, after Cui
    et al. 2019, ``beta = 0.9999``); ``beta = 0`` is plain CE. Hard labels only. The counts
    come and travel as for ``LDAMLoss``.

    Args:
        beta (float): ``beta`` of the effective number, in ``[0, 1)``. Defaults to 0.9999.
        class_counts (Sequence[int], optional): explicit training counts.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
        normalize_over (str): ``'global'``: under DDP the weighted mean runs over the batch
            of all ranks (two ranks train as one process on the concatenated batch);
            ``'rank'``: over each rank's batch. Defaults to ``'global'``.
    """

    ZERO_COUNT_REASON = 'their class-balanced weight (1 - beta) / (1 - beta^n) is infinite'

    def __init__(self, beta: float = 0.9999, class_counts: Optional[Sequence[int]] = None,
                 loss_weight: float = 1.0, normalize_over: str = 'global') -> None:
        super().__init__()
        self.normalize_over = check_normalize_over(normalize_over, 'ClassBalancedLoss')
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f'ClassBalancedLoss: beta must be in [0, 1), got {beta}.')
        self.beta = float(beta)
        self.loss_weight = float(loss_weight)
        self._init_counts(class_counts)

    def class_weight(self, num_classes: int) -> torch.Tensor:
        """``(C,)`` the per-class weights ``w_c``."""
        return drw_class_weights(self.require_counts(num_classes), self.beta)

    def forward(self, cls_score: torch.Tensor, target: torch.Tensor,
                weight: Optional[torch.Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None, **kwargs) -> torch.Tensor:
        """Weighted mean loss of ``(N, C)`` logits and ``(N,)`` hard labels."""
        if target.dim() != 1:
            raise ValueError('ClassBalancedLoss needs hard labels (N,): remove Mixup/CutMix '
                             'batch augments from `model.train_cfg`.')
        num_classes = cls_score.shape[-1]
        offset = torch.zeros(num_classes, device=cls_score.device)
        loss = prior_adjusted_ce(cls_score, offset, target, weight=weight,
                                 class_weight=self.class_weight(num_classes),
                                 reduction=reduction_override or 'mean',
                                 normalize_over=self.normalize_over)
        return self.loss_weight * loss
