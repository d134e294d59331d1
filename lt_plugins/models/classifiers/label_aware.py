"""ImageClassifier whose neck may see the labels and may sit inside the backbone."""
from typing import List, Optional, Tuple, Union

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .auto_channels import AutoChannelClassifier


@MODELS.register_module()
class LabelAwareClassifier(AutoChannelClassifier):
    """``ImageClassifier`` that hands labels to necks that ask for them.

    MMPretrain's ``ImageClassifier`` calls ``neck(feats)``: a neck never sees labels and
    always runs after the whole backbone. Feature-level augmentation such as AFA (Wang et
    al.) needs both: the labels, to generate features per class, and the backbone's last
    stage *after* the neck, so that generated features pass through it. This subclass adds
    exactly that, driven by two opt-in class attributes of the neck:

    - ``requires_labels = True``: in ``mode='loss'`` the neck is called as
      ``neck(feats, data_samples=data_samples, ...)`` and returns ``(feats, extras)``.
      ``extras['log_vars']`` (a dict of scalar tensors, names without ``'loss'``) is merged
      into the returned loss dict, so it is logged and not optimised; every other entry of
      ``extras`` is passed to ``head.loss(feats, data_samples, **extras)`` (AFA:
      ``gen_labels``). In ``'predict'``/``'tensor'`` modes the neck gets no labels and
      returns ``feats`` like any neck.
    - ``requires_tail = True``: the classifier runs only ``backbone.forward_trunk`` and
      passes ``tail=backbone.forward_tail`` to the neck, which runs the last stage itself
      (e.g. on real + generated features). The backbone must offer both methods
      (:class:`~lt_plugins.models.backbones.TimmSplitBackbone` does).

    Necks without these attributes behave exactly as in ``ImageClassifier``.

    Why this design: labels travel as explicit call arguments (no label state stashed on a
    module by a hook or the data preprocessor, which breaks under DDP re-entrancy, gradient
    checkpointing or several forwards per step); the backbone keeps ownership of its last
    stage, so its parameters stay under ``backbone.`` where pretrained-weight loading,
    layer-wise learning rates and the frozen-backbone cRT stage find them; and the head keeps
    MMPretrain's ``loss(feats, data_samples, **kwargs)`` signature, so a plain
    ``LinearClsHead`` still works whenever the neck generates nothing (e.g. cRT).
    A head-only implementation could not send generated features through the last stage.

    Args: as :class:`mmpretrain.models.ImageClassifier`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self._neck_wants('requires_tail'):
            missing = [m for m in ('forward_trunk', 'forward_tail')
                       if not callable(getattr(self.backbone, m, None))]
            if missing:
                raise ValueError(
                    f'{type(self.neck).__name__} runs between the last two backbone stages, '
                    f'but the backbone {type(self.backbone).__name__} has no '
                    f'{" / ".join(missing)}: use model.backbone=dict('
                    "type='TimmSplitBackbone', model_name=...), or place the neck after the "
                    "last stage (AFANeck: placement='after_last_stage').")

    def _neck_wants(self, flag: str) -> bool:
        return self.with_neck and bool(getattr(self.neck, flag, False))

    def _grad(self, part: str):
        """No autograd graph through parts a decoupled subclass lists in ``frozen``."""
        frozen = part in getattr(self, 'frozen', ())
        return torch.set_grad_enabled(torch.is_grad_enabled() and not frozen)

    def _backbone_feats(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        with self._grad('backbone'):
            if self._neck_wants('requires_tail'):
                return (self.backbone.forward_trunk(inputs), )
            return self.backbone(inputs)

    def _run_neck(self, x, **kwargs):
        # the tail belongs to the backbone: a frozen backbone with a trainable neck still
        # back-propagates through the tail (its parameters just get no gradient)
        with self._grad('neck'):
            return self.neck(x, **kwargs, **self._neck_kwargs())

    def _neck_kwargs(self) -> dict:
        if self._neck_wants('requires_tail'):
            return dict(tail=self.backbone.forward_tail)
        return {}

    def extract_feat(self, inputs: torch.Tensor, stage: str = 'neck'
                     ) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """As ``ImageClassifier.extract_feat``; with a trunk/tail neck, ``stage='backbone'``
        returns the trunk output (what the neck receives) and ``'neck'`` the pooled
        features after the tail."""
        assert stage in ('backbone', 'neck', 'pre_logits'), \
            f'Invalid output stage "{stage}", choose "backbone", "neck" or "pre_logits"'
        x = self._backbone_feats(inputs)
        if stage == 'backbone':
            return x
        if self.with_neck:
            x = self._run_neck(x)
        if stage == 'neck':
            return x
        assert self.with_head and hasattr(self.head, 'pre_logits'), \
            "No head or the head doesn't implement `pre_logits` method."
        return self.head.pre_logits(x)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample]) -> dict:
        """Forward with labels given to the neck; neck ``log_vars`` join the loss dict."""
        x = self._backbone_feats(inputs)
        extras: dict = {}
        if self.with_neck:
            if self._neck_wants('requires_labels'):
                x, extras = self._run_neck(x, data_samples=data_samples)
                extras = dict(extras)
            else:
                x = self._run_neck(x)
        log_vars = extras.pop('log_vars', {})
        losses = self.head.loss(x, data_samples, **extras)
        for key, value in log_vars.items():
            if 'loss' in key or key in losses:
                raise KeyError(f'{type(self.neck).__name__} log_vars key {key!r} would be '
                               'optimised or overwrite a head output; rename it.')
            losses[key] = value
        return losses

    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        """Inference: no labels reach the neck, so nothing is generated."""
        feats = self.extract_feat(inputs)
        return self.head.predict(feats, data_samples, **kwargs)
