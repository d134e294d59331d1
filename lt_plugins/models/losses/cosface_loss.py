"""CosFace large-margin cosine loss (MBJ Eq. 3; Wang et al., CVPR 2018)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS


def cosface_logits(cosine: torch.Tensor, target: torch.Tensor, scale: float,
                   margin: float) -> torch.Tensor:
    """``scale * (cos - margin * onehot(target))``: the logits inside Eq. 3."""
    onehot = F.one_hot(target, cosine.shape[1]).to(cosine.dtype)
    return scale * (cosine - margin * onehot)


@MODELS.register_module()
class CosFaceLoss(nn.Module):
    """CosFace loss on cosine similarities between L2-normalised features and class weights.

    MBJ Eq. 3: ``L = -log( e^{a(w_y.x - m)} / (e^{a(w_y.x - m)} + sum_{k!=y} e^{a w_k.x}) )``,
    i.e. cross-entropy over ``a * (cos - m * onehot(y))``. The MBJ paper gives no scale or
    margin; the defaults (``a = 64``, ``m = 0.35``) are CosFace's published setting, also the
    common re-ID choice.

    Args:
        scale (float): ``a``. Defaults to 64.
        margin (float): ``m``. Defaults to 0.35.
        loss_weight (float): multiplier. Defaults to 1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. Defaults to ``'mean'``.
    """

    def __init__(self, scale: float = 64.0, margin: float = 0.35, loss_weight: float = 1.0,
                 reduction: str = 'mean') -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f'CosFaceLoss scale must be > 0, got {scale}.')
        self.scale = float(scale)
        self.margin = float(margin)
        self.loss_weight = float(loss_weight)
        self.reduction = reduction

    def forward(self, cosine: torch.Tensor, target: torch.Tensor,
                weight: Optional[torch.Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None, **kwargs) -> torch.Tensor:
        """Args: ``cosine (B, C)`` in [-1, 1], ``target (B,)`` class indices."""
        reduction = reduction_override or self.reduction
        loss = F.cross_entropy(cosface_logits(cosine.float(), target, self.scale, self.margin),
                               target, reduction='none')
        if weight is not None:
            loss = loss * weight.float()
        if reduction == 'mean':
            loss = loss.sum() / (avg_factor if avg_factor is not None else loss.numel())
        elif reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
