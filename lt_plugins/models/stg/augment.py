"""Sample-specific tail augmentation of STG (Eq. 3-4) and the Table-7 alternatives."""
from typing import Optional

import torch

AUGMENT_TYPES = ('stg', 'gaussian', 'dropout', 'none')


def class_strength(class_counts: torch.Tensor) -> torch.Tensor:
    """``beta_c = (n_min / n_c)^(1/2)`` of Eq. 3 for every class (``n_min`` over classes with
    training samples; classes without samples get 0)."""
    counts = class_counts.double()
    present = counts > 0
    if not bool(present.any()):
        raise ValueError('STG: all class counts are zero; set `class_counts` or add '
                         'ClassCountsHook to `custom_hooks`.')
    n_min = counts[present].min()
    beta = torch.zeros_like(counts)
    beta[present] = (n_min / counts[present]).sqrt()
    return beta.float()


def stg_augment(feats: torch.Tensor,
                mu: torch.Tensor,
                sigma: torch.Tensor,
                strength: torch.Tensor,
                lam: float = 1.5,
                threshold: float = 0.5,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Eq. 3 then Eq. 4 for a set of (tail) features.

    Eq. 3: ``a_aug = a + (sqrt(Sigma) * eps + mu) * lambda * beta_y`` with ``eps ~ N(0, I)``.
    Eq. 4: ``a~ = 1[m > t] * a + 1[m < t] * a_aug`` with ``m ~ U(0, 1)^d``: each dimension
    keeps the original value with probability ``1 - t`` and takes the augmented one with
    probability ``t`` (``t = 0.5`` keeps half of the original feature).

    Args:
        feats (Tensor): ``(n, d)`` features ``a``.
        mu, sigma (Tensor): ``(n, d)`` predicted mean and diagonal variance.
        strength (Tensor): ``(n,)`` per-sample class strengths ``beta_y``.
        lam (float): global strength ``lambda`` (paper best 1.5).
        threshold (float): mixing threshold ``t`` in ``[0, 1]``.
        generator (torch.Generator, optional): source of ``eps`` and ``m``.

    Returns:
        Tensor: ``(n, d)`` augmented features ``a~``.
    """
    eps = torch.randn(feats.shape, generator=generator, device=feats.device, dtype=feats.dtype)
    scale = (lam * strength.to(feats.dtype))[:, None]
    a_aug = feats + (sigma.clamp_min(0).sqrt() * eps + mu) * scale
    m = torch.rand(feats.shape, generator=generator, device=feats.device, dtype=feats.dtype)
    return torch.where(m < threshold, a_aug, feats)


def gaussian_noise_augment(feats: torch.Tensor, std: float,
                           generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Table 7 baseline: ``a + std * eps``, ``eps ~ N(0, I)``."""
    eps = torch.randn(feats.shape, generator=generator, device=feats.device, dtype=feats.dtype)
    return feats + std * eps


def dropout_augment(feats: torch.Tensor, p: float,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Table 7 baseline: dropout on the feature (zero with probability ``p``, survivors scaled
    by ``1 / (1 - p)`` as in ``nn.Dropout``, so the expected feature is unchanged)."""
    if p <= 0:
        return feats
    keep = torch.rand(feats.shape, generator=generator, device=feats.device) >= p
    return feats * keep.to(feats.dtype) / (1.0 - p)
