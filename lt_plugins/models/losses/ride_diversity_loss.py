"""RIDE's distribution-aware diversity loss (Wang et al., ICLR 2021, Sec. 3.2)."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from .count_buffers import class_prior, size_empty_buffers_from


def ride_temperature_weights(class_counts: torch.Tensor, reweight_factor: float) -> torch.Tensor:
    """RIDE's per-class temperature factors ``w_c = C p_c f + 1 - f``, divided by their max.

    ``p_c = n_c / sum_j n_j`` is the training frequency and ``f`` the ``reweight_factor``: a
    frequent class gets a higher temperature (a flatter target for the diversity term), a rare
    class a lower one. Returns ``(C,)`` float32, all in ``(0, 1]``.
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64).reshape(-1)
    if counts.numel() == 0 or counts.sum() <= 0:
        raise ValueError('ride_temperature_weights: empty class counts.')
    freq = class_prior(counts)
    weights = counts.numel() * freq * float(reweight_factor) + 1.0 - float(reweight_factor)
    weights = weights / weights.max()
    if bool((weights <= 0).any()):
        raise ValueError(f'RIDEDiversityLoss: reweight_factor={reweight_factor} is too large: '
                         'some class temperatures are <= 0; lower it (RIDE: 0.05 CIFAR, 0.02 '
                         'ImageNet-LT, 0.015 iNaturalist).')
    return weights.float()


@MODELS.register_module()
class RIDEDiversityLoss(nn.Module):
    """Distribution-aware diversity loss of RIDE (Wang et al. 2021, Sec. 3.2, Eq. 4).

    For one expert's logits ``z_k`` and the ensemble logits ``z = mean_k z_k``:
    ``L_div = loss_weight * mean(T)^2 * KL( softmax(z / T) || softmax(z_k / T) )``
    (KL averaged over the batch). The ensemble distribution is a fixed target (no gradient),
    as in the reference implementation. With a *negative* ``loss_weight`` (RIDE: -0.2),
    minimising the total loss maximises the KL: each expert is pushed away from the ensemble,
    i.e. the experts diversify. The ``mean(T)^2`` factor keeps the gradient magnitude
    independent of the temperature (as in distillation).

    Temperature: ``T = base_temperature`` while re-weighting is off; once it is on
    (``DRWHook`` calls :meth:`set_drw_enabled`, RIDE's ``reweight_epoch``), it becomes the
    per-class vector ``T_c = base_temperature * w_c`` with
    ``w_c = (C p_c f + 1 - f) / max_c'(...)`` (:func:`ride_temperature_weights`, ``p_c`` the
    class frequency, ``f = reweight_factor``), applied to class ``c``'s logit.

    Args:
        loss_weight (float): the diversity factor (RIDE: -0.2). Defaults to -0.2.
        base_temperature (float): ``T`` before re-weighting. Defaults to 1.0.
        reweight_factor (float): ``f``. Defaults to 0.05 (RIDE's CIFAR value).
        drw_enabled (bool): initial re-weighting state. Defaults to False.
        class_counts (Sequence[int], optional): explicit counts (else ``ClassCountsHook``).
    """

    def __init__(self,
                 loss_weight: float = -0.2,
                 base_temperature: float = 1.0,
                 reweight_factor: float = 0.05,
                 drw_enabled: bool = False,
                 class_counts: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        if base_temperature <= 0:
            raise ValueError(f'RIDEDiversityLoss: base_temperature must be > 0, got '
                             f'{base_temperature}.')
        if not 0.0 <= reweight_factor < 1.0:
            raise ValueError(f'RIDEDiversityLoss: reweight_factor must be in [0, 1), got '
                             f'{reweight_factor}.')
        self.loss_weight = float(loss_weight)
        self.base_temperature = float(base_temperature)
        self.reweight_factor = float(reweight_factor)
        self.drw_enabled = bool(drw_enabled)
        self.register_buffer('class_counts', torch.zeros(0, dtype=torch.long))
        self.register_buffer('temperature_weights', torch.zeros(0))
        self._explicit_counts = class_counts is not None
        if class_counts is not None:
            self._write_counts(class_counts)

    def _write_counts(self, counts) -> None:
        counts = torch.as_tensor(counts, dtype=torch.long).reshape(-1)
        device = self.temperature_weights.device
        self.temperature_weights = ride_temperature_weights(counts, self.reweight_factor).to(
            device)
        self.class_counts = counts.to(device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        size_empty_buffers_from(self, state_dict, prefix, ('class_counts', 'temperature_weights'))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_class_counts(self, counts) -> None:
        """Receive ``n_c`` (``ClassCountsHook``); explicit ``class_counts`` win."""
        if not self._explicit_counts:
            self._write_counts(counts)

    def set_drw_enabled(self, enabled: bool) -> None:
        """Switch the frequency-dependent temperature on (RIDE's re-weighting epoch) or off."""
        self.drw_enabled = bool(enabled)

    def temperature(self) -> torch.Tensor:
        """``(1, C)`` per-class temperatures when re-weighting is on, else a scalar tensor."""
        if not self.drw_enabled:
            return torch.tensor(self.base_temperature)
        if self.temperature_weights.numel() == 0:
            raise RuntimeError(
                'RIDEDiversityLoss: missing class counts for the re-weighted temperature. Add '
                "dict(type='ClassCountsHook') to `custom_hooks` or set `class_counts=[...]`.")
        return self.base_temperature * self.temperature_weights.view(1, -1)

    def forward(self, expert_logits: torch.Tensor, ensemble_logits: torch.Tensor
                ) -> torch.Tensor:
        """Weighted KL(ensemble || expert) of ``(N, C)`` logits, averaged over the batch."""
        temp = self.temperature().to(expert_logits.device, expert_logits.dtype)
        if temp.dim() and temp.shape[-1] != expert_logits.shape[-1]:
            raise ValueError(f'RIDEDiversityLoss: {expert_logits.shape[-1]} logits per sample '
                             f'but {temp.shape[-1]} class counts.')
        log_q = F.log_softmax(expert_logits / temp, dim=1)
        with torch.no_grad():
            p = F.softmax(ensemble_logits.detach() / temp, dim=1)
        kl = F.kl_div(log_q, p, reduction='batchmean')
        t_mean = temp.mean()
        return self.loss_weight * t_mean * t_mean * kl
