"""Ground-truth transformation statistics of STG (Eq. 1), their per-sample temporal smoothing
and the regression losses that train the generator (stage 2).
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from lt_plugins.memory.rebalanced_fifo import gather_in_rank_order

REGRESSION_LOSSES = ('mse', 'smooth_l1', 'gaussian_nll')


def transformation_statistics(
        feats: torch.Tensor,
        labels: torch.Tensor,
        bank_feats: Optional[torch.Tensor] = None,
        bank_labels: Optional[torch.Tensor] = None,
        include_self: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample ground-truth mean and diagonal variance of semantic transformations (Eq. 1).

    For sample ``i`` the set ``S_i`` holds the same-class features of the batch plus those of the
    feature dictionary; its transformations are ``{a_j - a_i : a_j in S_i}`` and

        ``mu_i = 1/k sum_j (a_j - a_i)``,  ``Sigma_i = 1/k sum_j (mu_i - (a_j - a_i))^2``

    with ``k = |S_i|`` (the population variance: Eq. 1 divides by ``k``). ``Sigma_i`` is the
    variance of ``S_i`` itself, shift-invariant, so it is computed around the class mean of the
    pooled set (one centring per class, no cancellation in float32).

    Args:
        feats (Tensor): ``(B, d)`` batch features ``a_i``.
        labels (Tensor): ``(B,)`` their labels.
        bank_feats (Tensor, optional): ``(M, d)`` dictionary features (already excluding the
            current batch).
        bank_labels (Tensor, optional): ``(M,)`` their labels.
        include_self (bool): whether ``a_i`` belongs to its own set ``S_i``. The paper says
            "samples with the same class of a_i in the mini-batch", which reads both ways. With
            ``True`` a lone sample gets ``k = 1`` and ``mu = Sigma = 0``; with ``False``
            (default) ``a_i`` is left out, so a zero transformation is not counted as evidence.

    Returns:
        tuple: ``mu (B, d)``, ``Sigma (B, d)`` (float32) and ``k (B,)`` (long), the set sizes.
        Rows with ``k == 0`` are zero; callers mask samples with too small a set.
    """
    feats32 = feats.detach().float()
    labels = labels.reshape(-1).long()
    if labels.numel() == 0:
        empty = feats32.new_zeros(0, feats32.shape[-1])
        return empty, empty.clone(), labels.new_zeros(0)
    if bank_feats is not None and bank_feats.numel():
        pool = torch.cat([feats32, bank_feats.detach().to(feats32)], dim=0)
        pool_labels = torch.cat([labels, bank_labels.reshape(-1).long().to(labels.device)])
    else:
        pool, pool_labels = feats32, labels
    num_classes = int(pool_labels.max()) + 1
    # class means of the pooled set, used only as a numerically safe centre
    cnt = torch.bincount(pool_labels, minlength=num_classes).clamp_min(1).to(pool)
    centre = torch.zeros(num_classes, pool.shape[1], dtype=pool.dtype, device=pool.device)
    centre.index_add_(0, pool_labels, pool)
    centre = centre / cnt[:, None]
    pool_c = pool - centre[pool_labels]
    feats_c = feats32 - centre[labels]

    same = labels[:, None] == pool_labels[None, :]  # (B, B + M)
    if not include_self:
        b = labels.shape[0]
        same[torch.arange(b, device=labels.device), torch.arange(b, device=labels.device)] = False
    mask = same.to(pool.dtype)
    k = same.sum(dim=1)
    kf = k.clamp_min(1).to(pool.dtype)[:, None]
    mean_c = mask @ pool_c / kf
    var = (mask @ pool_c.square() / kf - mean_c.square()).clamp_min_(0.0)
    has = (k > 0).to(pool.dtype)[:, None]
    mu = (mean_c - feats_c) * has
    return mu, var * has, k


def regression_loss(pred_mu: torch.Tensor,
                    pred_sigma: torch.Tensor,
                    gt_mu: torch.Tensor,
                    gt_sigma: torch.Tensor,
                    loss_type: str = 'mse',
                    min_sigma: float = 1e-4) -> Tuple[torch.Tensor, torch.Tensor]:
    """Regression loss of the generator against the ground truth of Eq. 1 (per sample).

    The paper only says STG "regresses" ``mu`` and ``Sigma``; three readings are offered:

    * ``'mse'`` (default): ``mean_d (mu_hat - mu)^2`` and ``mean_d (Sigma_hat - Sigma)^2``;
    * ``'smooth_l1'``: the same with the Huber loss (beta 1), robust to outlier dimensions;
    * ``'gaussian_nll'``: the negative log-likelihood view of ``KL(N(mu, Sigma) ||
      N(mu_hat, Sigma_hat))`` without its constant ``log Sigma`` term,
      ``0.5 mean_d [log Sigma_hat + (Sigma + (mu - mu_hat)^2) / Sigma_hat]``, with
      ``Sigma_hat`` floored at ``min_sigma``; returned as one term (the second is zero).

    Returns:
        tuple: per-sample ``(loss_mu (B,), loss_sigma (B,))``.
    """
    if loss_type == 'mse':
        return ((pred_mu - gt_mu).square().mean(dim=1),
                (pred_sigma - gt_sigma).square().mean(dim=1))
    if loss_type == 'smooth_l1':
        return (F.smooth_l1_loss(pred_mu, gt_mu, reduction='none').mean(dim=1),
                F.smooth_l1_loss(pred_sigma, gt_sigma, reduction='none').mean(dim=1))
    if loss_type == 'gaussian_nll':
        var = pred_sigma.clamp_min(min_sigma)
        nll = 0.5 * (var.log() + (gt_sigma + (gt_mu - pred_mu).square()) / var).mean(dim=1)
        return nll, torch.zeros_like(nll)
    raise ValueError(f'STG loss={loss_type!r}: choose one of {REGRESSION_LOSSES} '
                     '(`model.head.loss_type`).')


class SampleStatSmoother(nn.Module):
    """Per-sample exponential moving average of the ground-truth statistics (Sec. 3.3).

    "To make the predictions more stable, we smoothly update the estimated statistics for the
    same sample": sample ``i`` (keyed by ``data_sample.sample_idx``) keeps ``mu_bar_i``,
    ``Sigma_bar_i``; a new estimate updates them as ``x_bar <- m x_bar + (1 - m) x`` (the first
    estimate is taken as is), and the smoothed values are the regression targets. ``m = 0``
    turns smoothing off (no storage).

    Storage grows on demand to the largest ``sample_idx`` seen (two ``(N, d)`` float32 buffers
    plus a ``(N,)`` flag: 6 MB for CIFAR-10-LT with d = 64, 1.9 GB for ImageNet-LT with
    d = 2048 — set ``persistent=False`` to keep it out of checkpoints). Updates are
    all-gathered across ranks, so every rank smooths every sample identically.

    Args:
        dim (int): feature dimension.
        momentum (float): ``m`` in ``[0, 1)``. Defaults to 0.9.
        persistent (bool): save the state in checkpoints (resume continues the average).
    """

    def __init__(self, dim: int, momentum: float = 0.9, persistent: bool = True) -> None:
        super().__init__()
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f'smoothing momentum must be in [0, 1), got {momentum} '
                             '(`model.head.smooth_momentum`; 0 disables smoothing).')
        self.dim = int(dim)
        self.momentum = float(momentum)
        self.register_buffer('mu', torch.zeros(0, self.dim), persistent=persistent)
        self.register_buffer('sigma', torch.zeros(0, self.dim), persistent=persistent)
        self.register_buffer('seen', torch.zeros(0, dtype=torch.bool), persistent=persistent)

    def _grow(self, n: int) -> None:
        old = self.seen.shape[0]
        if n <= old:
            return
        n = max(n, int(old * 1.25) + 1)
        self.mu = torch.cat([self.mu, self.mu.new_zeros(n - old, self.dim)])
        self.sigma = torch.cat([self.sigma, self.sigma.new_zeros(n - old, self.dim)])
        self.seen = torch.cat([self.seen, self.seen.new_zeros(n - old)])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        stored = state_dict.get(prefix + 'seen')
        if stored is not None:
            self._grow(stored.shape[0])
            if stored.shape[0] < self.seen.shape[0]:  # pad the checkpoint to our size
                pad = self.seen.shape[0] - stored.shape[0]
                for name in ('mu', 'sigma', 'seen'):
                    t = state_dict[prefix + name]
                    state_dict[prefix + name] = torch.cat([t, t.new_zeros((pad, ) + t.shape[1:])])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def forward(self, idx: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor,
                valid: torch.Tensor,
                gather: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """Update the averages of the ``valid`` samples and return the smoothed targets.

        Args:
            idx (Tensor): ``(B,)`` dataset indices (``sample_idx``).
            mu, sigma (Tensor): ``(B, d)`` new estimates.
            valid (Tensor): ``(B,)`` bool, which estimates are usable.
            gather (bool): all-gather the updates from every rank first. Pass False when
                the inputs already are the global batch (identical on every rank).

        Returns:
            tuple: smoothed ``(mu, sigma)``, equal to the inputs where ``valid`` is False.
        """
        if self.momentum == 0:
            return mu, sigma
        idx = idx.reshape(-1).long()
        g_idx, g_mu, g_sigma, g_valid = (idx, mu.float(), sigma.float(), valid)
        if gather:
            g_idx, g_mu, g_sigma, g_valid = gather_in_rank_order(g_idx, g_mu, g_sigma, g_valid)
        self._grow(int(g_idx.max()) + 1 if g_idx.numel() else 0)
        if self.mu.device != mu.device:
            self.to(mu.device)
        g_idx, g_mu, g_sigma = g_idx[g_valid], g_mu[g_valid], g_sigma[g_valid]
        # a sample seen twice in one global batch (repeat samplers): last one wins
        seen = self.seen[g_idx][:, None]
        m = self.momentum
        new_mu = torch.where(seen, m * self.mu[g_idx] + (1 - m) * g_mu, g_mu)
        new_sigma = torch.where(seen, m * self.sigma[g_idx] + (1 - m) * g_sigma, g_sigma)
        self.mu[g_idx] = new_mu
        self.sigma[g_idx] = new_sigma
        self.seen[g_idx] = True
        loc = idx[valid]
        out_mu, out_sigma = mu.clone(), sigma.clone()
        out_mu[valid] = self.mu[loc].to(mu.dtype)
        out_sigma[valid] = self.sigma[loc].to(sigma.dtype)
        return out_mu, out_sigma


def diagonal_gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor,
                         min_sigma: float = 1e-8) -> torch.Tensor:
    """Pairwise ``KL(N(mu_i, Sigma_i) || N(mu_j, Sigma_j))`` of diagonal Gaussians (Table 5).

    ``KL_ij = 0.5 sum_d [log(S_jd / S_id) + (S_id + (mu_id - mu_jd)^2) / S_jd - 1]``,
    asymmetric, zero on the diagonal.

    Args:
        mu (Tensor): ``(n, d)`` means.
        sigma (Tensor): ``(n, d)`` diagonal variances (floored at ``min_sigma``).

    Returns:
        Tensor: ``(n, n)`` float64 matrix, row ``i`` = first argument.
    """
    mu, s = mu.double(), sigma.double().clamp_min(min_sigma)
    log_ratio = s.log()[None, :, :] - s.log()[:, None, :]  # log S_j - log S_i
    quad = (s[:, None, :] + (mu[:, None, :] - mu[None, :, :]).square()) / s[None, :, :]
    return 0.5 * (log_ratio + quad - 1.0).sum(dim=-1)
