"""Decoupled classifier that can train on cached features and checks its predecessor stage."""
from typing import Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseDataPreprocessor
from mmpretrain.registry import MODELS

from lt_plugins.models.classifiers.decoupled import DecoupledClassifier

FEATS_KEY = 'feats'


class FeatureBypassPreprocessor(BaseDataPreprocessor):
    """Wraps a data preprocessor so that batches of cached features skip it.

    A batch ``{'feats': [...], 'data_samples': [...]}`` (from
    :class:`~lt_plugins.engine.hooks.FeatureCacheHook`) is only stacked, moved to the device
    and returned as ``inputs``; any other batch goes to the wrapped preprocessor. Attributes
    not found here (``mean``, ``std``, ``batch_augments``) are read from the wrapped one.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, data: dict, training: bool = False) -> dict:
        if isinstance(data, dict) and FEATS_KEY in data:
            feats = data[FEATS_KEY]
            if isinstance(feats, (list, tuple)):
                feats = torch.stack(list(feats))
            out = self.cast_data({'inputs': feats, 'data_samples': data.get('data_samples')})
            out['inputs'] = out['inputs'].float()
            return out
        return self.inner(data, training)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__('inner'), name)


@MODELS.register_module()
class FeatureCacheClassifier(DecoupledClassifier):
    """:class:`DecoupledClassifier` (frozen backbone + neck) that also accepts cached features
    and refuses to train on a backbone that no checkpoint filled.

    * Inputs that are already features (``(B, d)`` tensors, produced by
      :class:`~lt_plugins.engine.hooks.FeatureCacheHook`) skip the backbone and neck; the
      data preprocessor is wrapped so feature batches bypass image normalisation.
    * A frozen, randomly initialised backbone is always a configuration mistake in a later
      stage: training raises unless ``load_from`` / ``resume`` / ``init_cfg=Pretrained``
      filled ``backbone.*`` (``require_pretrained=False`` for unit tests).

    Used by STG's stages 2 and 3 (``reinit_head=False``: the STG heads decide what to keep
    of the previous stage's head, see :class:`STGClsHead`).

    Args:
        require_pretrained (bool): see above. Defaults to True.
        predecessor (str): the stage whose checkpoint is expected, for the error message.
        **kwargs: :class:`DecoupledClassifier` arguments (``frozen``, ``reinit_head``) and
            ``ImageClassifier`` arguments.
    """

    def __init__(self, *args, require_pretrained: bool = True,
                 predecessor: str = 'the previous stage', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.require_pretrained = bool(require_pretrained)
        self.predecessor = predecessor
        self._backbone_loaded = kwargs.get('pretrained') is not None
        if not isinstance(self.data_preprocessor, FeatureBypassPreprocessor):
            self.data_preprocessor = FeatureBypassPreprocessor(self.data_preprocessor)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if any(k.startswith(prefix + 'backbone.') for k in state_dict):
            self._backbone_loaded = True
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def init_weights(self) -> None:
        super().init_weights()
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            self._backbone_loaded = True

    @staticmethod
    def is_feature_input(inputs) -> bool:
        """Cached features arrive as ``(B, d)`` tensors, images as ``(B, C, H, W)``."""
        return isinstance(inputs, torch.Tensor) and inputs.dim() == 2

    def extract_feat(self, inputs: torch.Tensor, stage: str = 'neck') -> Tuple:
        """Frozen-part features; cached ``(B, d)`` features pass through as ``(feats,)``."""
        if self.is_feature_input(inputs):
            if stage == 'backbone':
                raise ValueError('cached features have no backbone stage output.')
            feats = (inputs, )
            return self.head.pre_logits(feats) if stage == 'pre_logits' else feats
        return super().extract_feat(inputs, stage)

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        if self.require_pretrained and not self._backbone_loaded:
            raise RuntimeError(
                f'{type(self).__name__}: the frozen backbone was not loaded from a checkpoint. '
                f'This stage trains on top of {self.predecessor}: set `load_from` to its '
                'checkpoint (`load_from = \'work_dirs/<previous stage config>/epoch_N.pth\'` in '
                'the config, or `--cfg-options load_from=...`).')
        return super().loss(inputs, data_samples)
