"""Balanced Softmax (Ren et al., NeurIPS 2020)."""
from typing import Optional, Sequence

import torch
from mmpretrain.registry import MODELS

from .logit_adjusted_loss import LogitAdjustedLoss


@MODELS.register_module()
class BalancedSoftmaxLoss(LogitAdjustedLoss):
    """Balanced Softmax cross-entropy: CE on ``z + log n`` (Ren et al. 2020, Eq. 4).

    ``L = -log( n_y e^{z_y} / sum_j n_j e^{z_j} )``: the softmax re-weighted by the training
    counts, so that the raw logits model the balanced (test) label distribution. Prediction
    is the plain ``argmax z``. Equal to :class:`LogitAdjustedLoss` with ``tau = 1`` (``log n_c``
    and ``log pi_c`` differ by ``log sum_j n_j``, the same for every class, which the softmax
    cancels). The counts come and travel as for ``LogitAdjustedLoss`` / ``LDAMLoss``.

    Args:
        class_counts (Sequence[int], optional): explicit training counts.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, class_counts: Optional[Sequence[int]] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__(tau=1.0, class_counts=class_counts, loss_weight=loss_weight)

    def logit_offset(self, num_classes: int) -> torch.Tensor:
        """``(C,)`` ``log n_c``."""
        return self.require_counts(num_classes).to(torch.float64).log().float()
