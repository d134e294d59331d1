"""Post-hoc logit adjustment (Menon et al., ICLR 2021, Eq. 9): an inference-only part."""
from typing import Optional, Sequence

import torch
from mmpretrain.registry import MODELS

from lt_plugins.models.losses.count_buffers import ClassCountsModule, log_class_prior


@MODELS.register_module()
class PostHocLogitAdjustment(ClassCountsModule):
    """Inference-time reading of a trained classifier: ``z - tau * log pi``.

    Menon et al. (2021, Eq. 9) read any classifier trained with plain CE for the balanced
    error by subtracting the scaled log-prior of the training labels from its logits
    (``pi_c = n_c / sum_j n_j``); ``tau = 0`` leaves the classifier as it is. Nothing is
    trained: attach it to a ``ComposedClsHead`` (``logit_adjustment=dict(tau=...)``), load any
    single-classifier checkpoint and choose ``tau`` on the validation split (benchmark arm
    ``logit-adjust-posthoc``: one reading per ``tau`` of a small grid).

    The counts come from ``ClassCountsHook`` (the training set, or the checkpoint meta in
    ``tools/test.py``) or an explicit ``class_counts``, into the ``class_counts`` buffer; a
    checkpoint written without this part (the CE model it reads) loads with no missing key.

    Args:
        tau (float): the adjustment strength, >= 0. Defaults to 1.0.
        num_classes (int, optional): ``C`` (filled in by ``ComposedClsHead``).
        class_counts (Sequence[int], optional): explicit training counts.
    """

    MISSING_OK = True
    ZERO_COUNT_REASON = 'their log-prior is -inf and the adjustment would always predict them'

    def __init__(self, tau: float = 1.0, num_classes: Optional[int] = None,
                 class_counts: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        if float(tau) < 0:
            raise ValueError(f'PostHocLogitAdjustment: tau must be >= 0, got {tau} '
                             '(`model.head.logit_adjustment.tau`).')
        self.tau = float(tau)
        self.num_classes = None if num_classes is None else int(num_classes)
        self._init_counts(class_counts)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` logits minus ``tau * log pi`` (unchanged when ``tau = 0``)."""
        if self.tau == 0:
            return logits
        log_prior = log_class_prior(self.require_counts(logits.shape[-1]), check=False)
        return logits - (self.tau * log_prior).to(logits.device, logits.dtype)
