"""Classifier heads of the decoupled second stage: LWS and tau-normalisation (Kang et al. 2019)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS


@MODELS.register_module()
class LWSHead(LinearClsHead):
    """Learnable weight scaling: logits ``s_c * (w_c . x + b_c)`` with ``W, b`` frozen.

    Keeps the stage-1 classifier (use ``DecoupledClassifier(reinit_head=False)``) and learns
    one scale per class, initialised to 1, with class-balanced sampling.
    """

    def __init__(self, num_classes: int, in_channels: int, **kwargs) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        self.fc.requires_grad_(False)
        self.scales = nn.Parameter(torch.ones(num_classes))

    def forward(self, feats) -> torch.Tensor:
        return super().forward(feats) * self.scales


@MODELS.register_module()
class TauNormHead(LinearClsHead):
    """tau-normalised classifier: logits ``x . w_c / ||w_c||^tau`` (bias dropped).

    Post-hoc, no training: load a stage-1 checkpoint (``DecoupledClassifier(
    reinit_head=False)`` or a plain ``ImageClassifier``) and pick ``tau`` on the validation
    split with ``tools/tau_norm_search.py`` (``tau = 0`` is the plain classifier without
    bias, ``tau = 1`` the cosine classifier up to a scale).

    Args:
        tau (float): normalisation power, >= 0. Defaults to 1.0.
    """

    def __init__(self, num_classes: int, in_channels: int, tau: float = 1.0,
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        if tau < 0:
            raise ValueError(f'tau={tau} must be >= 0.')
        self.tau = tau

    def forward(self, feats) -> torch.Tensor:
        weight = self.fc.weight
        norms = weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return F.linear(self.pre_logits(feats), weight / norms.pow(self.tau))
