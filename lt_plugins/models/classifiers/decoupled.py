"""Decoupled second stage (Kang et al. 2019): frozen representation, re-trained classifier."""
from typing import Sequence, Tuple

import torch
from mmpretrain.registry import MODELS

from .auto_channels import AutoChannelClassifier


@MODELS.register_module()
class DecoupledClassifier(AutoChannelClassifier):
    """``ImageClassifier`` whose representation is frozen for classifier re-training.

    The modules named in ``frozen`` (default backbone and neck) get no gradients, run under
    ``torch.no_grad`` and stay in eval mode (BatchNorm statistics frozen) whatever
    ``train()`` is called with. Used for cRT, LWS and the last stages of STG / AFA.

    Loading the stage-1 checkpoint (``load_from``): with ``reinit_head=True`` (cRT) the
    checkpoint's ``head.*`` weights are skipped, so the classifier starts from its fresh
    initialisation; a checkpoint written by this class (a stage-2 run being resumed or
    tested) carries the ``decoupled_stage`` buffer and loads whole. With
    ``reinit_head=False`` (LWS, tau-normalisation) the stage-1 head is kept. A head may name
    key prefixes it carries over from the previous stage even when it is re-initialised
    (``head.stage_carried_keys``, e.g. ``ComposedClsHead``'s STG generator trained in stage 2),
    and may tell a checkpoint of an earlier decoupled stage from its own
    (``head.is_earlier_stage(state_dict, prefix)``: STG stage 2, itself decoupled, before the
    composed stage 3).

    Args:
        frozen (Sequence[str]): sub-modules to freeze. Defaults to ``('backbone', 'neck')``.
        reinit_head (bool): start the head from scratch instead of the stage-1 weights.
        **kwargs: ``ImageClassifier`` arguments.
    """

    def __init__(self, *args, frozen: Sequence[str] = ('backbone', 'neck'),
                 reinit_head: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        unknown = [name for name in frozen if name not in ('backbone', 'neck', 'head')]
        if unknown:
            raise ValueError(f'frozen={tuple(frozen)}: {unknown} are not parts of an '
                             "ImageClassifier; choose among 'backbone', 'neck', 'head'.")
        self.frozen = tuple(name for name in frozen if getattr(self, name, None) is not None)
        self.reinit_head = reinit_head
        # Marks checkpoints written by a decoupled stage (see class docstring).
        self.register_buffer('decoupled_stage', torch.ones((), dtype=torch.long))
        for name in self.frozen:
            getattr(self, name).requires_grad_(False)
        self._register_load_state_dict_pre_hook(self._skip_stage1_head)

    def _skip_stage1_head(self, state_dict, prefix, *args) -> None:
        marker = f'{prefix}decoupled_stage'
        earlier = getattr(self.head, 'is_earlier_stage', None)
        if marker in state_dict and not (earlier and earlier(state_dict, f'{prefix}head.')):
            return  # written by a decoupled stage (this one): load whole
        if self.reinit_head:
            # parts of the head that come from the previous stage (STG's trained generator)
            keep = tuple(f'{prefix}head.{p}' for p in getattr(self.head, 'stage_carried_keys',
                                                             ()))
            for key in [k for k in state_dict
                        if k.startswith(f'{prefix}head.') and not k.startswith(keep)]:
                del state_dict[key]
        # A stage-1 checkpoint has no marker; add it so the load reports no missing key.
        state_dict[marker] = self.decoupled_stage.clone()

    def train(self, mode: bool = True) -> 'DecoupledClassifier':
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    def extract_feat(self, inputs: torch.Tensor, stage: str = 'neck') -> Tuple:
        with torch.set_grad_enabled('backbone' not in self.frozen and torch.is_grad_enabled()):
            x = self.backbone(inputs)
        if stage == 'backbone':
            return x
        if self.with_neck:
            with torch.set_grad_enabled('neck' not in self.frozen and torch.is_grad_enabled()):
                x = self.neck(x)
        if stage == 'neck':
            return x
        assert self.with_head and hasattr(self.head, 'pre_logits'), \
            "No head or the head doesn't implement `pre_logits` method."
        return self.head.pre_logits(x)
