"""Circle-style loss of a feature against a memory of class prototypes (MBJ Eq. 4)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

_NEG = -1e9  # finite "minus infinity": keeps logsumexp gradients NaN-free on empty rows


def circle_memory_loss(sim: torch.Tensor, pos_mask: torch.Tensor, scale: float,
                       margin: float) -> torch.Tensor:
    """Per-sample MBJ Eq. 4 from similarities, in the factorised form.

    ``log(1 + sum_j sum_i exp(a (s_nj - s_pi + m)))
    = softplus( LSE_j(a s_nj) + LSE_i(-a s_pi) + a m )`` (O(K + L) per sample, stable).

    Args:
        sim (Tensor): ``(B, M)`` similarities ``x . p`` of each feature to each memory entry.
        pos_mask (Tensor): ``(B, M)`` bool, True where the entry has the sample's class.
        scale (float): ``a``. margin (float): ``m``.

    Returns:
        Tensor: ``(B,)`` losses; 0 for a sample with no positive (``K = 0``) or no negative
        (``L = 0``) in memory (the double sum is empty).
    """
    sim = sim.float()
    neg_mask = ~pos_mask
    lse_n = torch.logsumexp((scale * sim).masked_fill(~neg_mask, _NEG), dim=1)
    lse_p = torch.logsumexp((-scale * sim).masked_fill(~pos_mask, _NEG), dim=1)
    has_both = pos_mask.any(1) & neg_mask.any(1)
    loss = F.softplus(lse_n + lse_p + scale * margin)
    return torch.where(has_both, loss, torch.zeros_like(loss))


@MODELS.register_module()
class CircleMemoryLoss(nn.Module):
    """MBJ Eq. 4: Circle-loss pairing of a feature with memorised prototypes.

    For feature ``x`` of class ``y``, positives ``u_1..u_K`` are the memory entries of class
    ``y`` and negatives ``v_1..v_L`` all other entries;
    ``L = log(1 + sum_j sum_i exp(a (v_j.x - u_i.x + m)))`` on L2-normalised vectors, computed
    as :func:`circle_memory_loss`. A sample without a positive in memory contributes 0; the
    batch value is the mean over all samples (``avg_factor`` overrides the divisor).

    Args:
        scale (float): ``a``. Defaults to 64 (the CosFace default of :class:`CosFaceLoss`).
        margin (float): ``m``. Defaults to 0.35.
        loss_weight (float): multiplier (the paper's ``eta = 1/15`` is applied by the head).
        normalize (bool): L2-normalise features and memory first. Defaults to True.
    """

    def __init__(self, scale: float = 64.0, margin: float = 0.35, loss_weight: float = 1.0,
                 normalize: bool = True) -> None:
        super().__init__()
        self.scale = float(scale)
        self.margin = float(margin)
        self.loss_weight = float(loss_weight)
        self.normalize = normalize

    def forward(self, feats: torch.Tensor, labels: torch.Tensor, mem_feats: torch.Tensor,
                mem_labels: torch.Tensor, avg_factor=None) -> torch.Tensor:
        """Args: ``feats (B, d)``, ``labels (B,)``, ``mem_feats (M, d)``, ``mem_labels (M,)``."""
        if mem_feats.shape[0] == 0:
            return feats.sum() * 0.0
        feats = feats.float()
        mem_feats = mem_feats.float()
        if self.normalize:
            feats = F.normalize(feats, dim=1)
            mem_feats = F.normalize(mem_feats, dim=1)
        sim = feats @ mem_feats.t()
        pos = labels.view(-1, 1) == mem_labels.view(1, -1)
        loss = circle_memory_loss(sim, pos, self.scale, self.margin)
        denom = avg_factor if avg_factor is not None else max(loss.numel(), 1)
        return self.loss_weight * loss.sum() / denom
