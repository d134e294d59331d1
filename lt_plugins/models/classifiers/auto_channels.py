"""``in_channels='auto'``: necks and heads sized from the backbone, so that changing a timm
``model_name`` is the only edit a config needs."""
import inspect
from typing import Optional, Tuple, Union

import torch.nn as nn
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS

AUTO = 'auto'
# head arguments that take the backbone's channels (IEMHead's global / local keys)
_BACKBONE_CHANNEL_KEYS = ('global_channels', 'local_channels')

ModuleOrCfg = Union[nn.Module, dict, None]


def backbone_channels(backbone: nn.Module) -> int:
    """Channels of the (last) feature map a backbone returns.

    ``TimmSplitBackbone`` and other backbones with an integer ``out_channels`` say it
    themselves; for ``TIMMBackbone`` it is timm's ``feature_info`` (``features_only=True``:
    the last returned level) or ``num_features`` (``features_only=False``).
    """
    out = getattr(backbone, 'out_channels', None)
    if isinstance(out, int):
        return out
    timm_model = getattr(backbone, 'timm_model', None)
    if timm_model is not None:
        info = getattr(timm_model, 'feature_info', None)
        if callable(getattr(info, 'channels', None)):      # FeatureListNet
            return int(info.channels()[-1])
        num_features = getattr(timm_model, 'num_features', None)
        if isinstance(num_features, int) and num_features > 0:
            return num_features
    raise ValueError(
        f"in_channels='auto' cannot read the output channels of "
        f'{type(backbone).__name__}: it is neither a timm backbone (TIMMBackbone, '
        'TimmSplitBackbone) nor has an integer `out_channels`. Set `in_channels` of the neck '
        'and head to the number of channels by hand.')


def _arg_default(cfg: dict, name: str):
    """``cfg[name]``, else the default of argument ``name`` of the registered ``cfg['type']``."""
    if name in cfg:
        return cfg[name]
    cls = MODELS.get(cfg['type']) if isinstance(cfg.get('type'), str) else cfg.get('type')
    if cls is None:
        return None
    param = inspect.signature(cls.__init__).parameters.get(name)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def neck_input_channels(backbone: nn.Module, neck_cfg: dict) -> int:
    """Channels a neck receives: the trunk's when it sits before the last stage of a split
    backbone (``placement='before_last_stage'``, e.g. AFANeck), else the backbone output's."""
    if _arg_default(neck_cfg, 'placement') == 'before_last_stage':
        trunk = getattr(backbone, 'trunk_channels', None)
        if not isinstance(trunk, int):
            raise ValueError(
                f"{neck_cfg.get('type')}(in_channels='auto', placement='before_last_stage') "
                f'needs a split backbone (TimmSplitBackbone), got {type(backbone).__name__}.')
        return trunk
    return backbone_channels(backbone)


def resolve_auto_channels(backbone: ModuleOrCfg, neck: ModuleOrCfg, head: ModuleOrCfg
                          ) -> Tuple[ModuleOrCfg, ModuleOrCfg, ModuleOrCfg]:
    """Build what ``'auto'`` depends on and fill it in.

    Only when the neck or head config holds an ``'auto'`` value is the backbone (and then
    the neck) built here, exactly as ``ImageClassifier`` would build it; otherwise the three
    parts pass through untouched. The head's ``in_channels`` becomes the neck's
    ``out_channels`` when the neck has one (RSANeck), else the backbone's channels (pooling
    necks, AFANeck, no neck); ``global_channels`` / ``local_channels`` become the backbone's.
    """
    def has_auto(cfg, keys) -> bool:
        return isinstance(cfg, dict) and any(cfg.get(k) == AUTO for k in keys)

    head_keys = ('in_channels', ) + _BACKBONE_CHANNEL_KEYS
    if not (has_auto(neck, ('in_channels', )) or has_auto(head, head_keys)):
        return backbone, neck, head
    if not isinstance(backbone, nn.Module):
        backbone = MODELS.build(backbone)
    if has_auto(neck, ('in_channels', )):
        neck = dict(neck, in_channels=neck_input_channels(backbone, neck))
    if neck is not None and not isinstance(neck, nn.Module):
        neck = MODELS.build(neck)
    if has_auto(head, head_keys):
        head = dict(head)
        channels = backbone_channels(backbone)
        if head.get('in_channels') == AUTO:
            neck_out = getattr(neck, 'out_channels', None)
            head['in_channels'] = neck_out if isinstance(neck_out, int) else channels
        for key in _BACKBONE_CHANNEL_KEYS:
            if head.get(key) == AUTO:
                head[key] = channels
    return backbone, neck, head


@MODELS.register_module()
class AutoChannelClassifier(ImageClassifier):
    """``ImageClassifier`` that accepts ``in_channels='auto'`` in its neck and head.

    ``'auto'`` is read off the built backbone (see :func:`resolve_auto_channels`), so a
    config switches timm backbones by ``model_name`` alone::

        model = dict(type='AutoChannelClassifier',
                     backbone=dict(type='TIMMBackbone', model_name='resnet50'),
                     neck=dict(type='GlobalAveragePooling'),
                     head=dict(type='LinearClsHead', num_classes=10, in_channels='auto'))

    Everything else is ``ImageClassifier``: same forward, same state-dict keys, so its
    checkpoints load into an ``ImageClassifier`` and back. Every classifier of this package
    (decoupled, label-aware, feature-cache) derives from it.
    """

    def __init__(self, backbone: ModuleOrCfg, neck: Optional[ModuleOrCfg] = None,
                 head: Optional[ModuleOrCfg] = None, *args, **kwargs) -> None:
        backbone, neck, head = resolve_auto_channels(backbone, neck, head)
        super().__init__(backbone, neck, head, *args, **kwargs)
