"""``in_channels='auto'``: necks and heads sized from the backbone, so that changing a timm
``model_name`` is the only edit a config needs."""
import inspect
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS

from ..backbones.timm_names import TIMM_BACKBONES, check_timm_model_name

AUTO = 'auto'
# head arguments that take the backbone's channels (IEMHead's global / local keys)
_BACKBONE_CHANNEL_KEYS = ('global_channels', 'local_channels')

ModuleOrCfg = Union[nn.Module, dict, None]


def _dry_forward(module: nn.Module, fn: Callable[[torch.Tensor], Any], in_chans: int,
                 sizes: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """``fn`` on a zero batch of 2 images (the first size the model accepts), in eval mode
    and without autograd, so neither BatchNorm statistics nor parameters change."""
    param = next(module.parameters(), None)
    kwargs = dict(dtype=param.dtype, device=param.device) if param is not None else {}
    was_training = module.training
    module.eval()
    errors = []
    try:
        with torch.no_grad():
            for size in sizes:
                try:
                    out = fn(torch.zeros(2, in_chans, *size, **kwargs))
                except Exception as err:  # e.g. a ViT built for one image size
                    errors.append(f'{size[0]}x{size[1]}: {err}')
                    continue
                out = out[-1] if isinstance(out, (tuple, list)) else out
                return out
    finally:
        module.train(was_training)
    raise ValueError(f'{type(module).__name__}: a dry forward failed at every tried input size '
                     f'({"; ".join(errors)}).')


def _dry_sizes(timm_model: nn.Module) -> List[Tuple[int, int]]:
    """Input sizes a timm model should accept, smallest first: 32x32 (cheap; stride-32 CNNs
    give 1x1 maps), then the fixed size of a patch embedding, then the pretrained size."""
    sizes = [(32, 32)]
    img_size = getattr(getattr(timm_model, 'patch_embed', None), 'img_size', None)
    if isinstance(img_size, (tuple, list)) and len(img_size) == 2:
        sizes.insert(0, (int(img_size[0]), int(img_size[1])))
    cfg = getattr(timm_model, 'pretrained_cfg', None) or {}
    input_size = cfg.get('input_size') if isinstance(cfg, dict) else None
    if input_size and len(input_size) == 3:
        sizes.append((int(input_size[1]), int(input_size[2])))
    return list(dict.fromkeys(sizes))


def backbone_channels(backbone: nn.Module) -> int:
    """Channels of the (last) feature map a backbone returns.

    - ``TimmSplitBackbone`` and other backbones with an integer ``out_channels`` say it
      themselves;
    - ``TIMMBackbone(features_only=True)``: timm's ``feature_info`` of the last returned
      level (a FeatureListNet returns exactly these levels);
    - ``TIMMBackbone(features_only=False)``: one dry forward of a 2-image zero batch at
      32x32 (or the model's fixed input size). Why a forward and not ``num_features``:
      ``TIMMBackbone`` returns ``forward_head`` of timm with the classifier and pooling
      removed, and what that head still does is model-specific. MobileNetV3 applies its
      ``conv_head`` (288 -> 1024 channels for ``mobilenetv3_small_050``) to the unpooled
      map, so ``num_features`` is wrong; timm >= 1.0's ``head_hidden_size`` is right there
      but not for heads that skip their hidden layer without pooling (NormMlp heads), and
      older timm has no such attribute. The forward is what the neck and head will
      actually receive, costs a few ms, runs in eval mode under ``no_grad`` (no state
      changes), and the attributes name what was expected in the error when it fails.
    """
    out = getattr(backbone, 'out_channels', None)
    if isinstance(out, int):
        return out
    timm_model = getattr(backbone, 'timm_model', None)
    if timm_model is not None:
        info = getattr(timm_model, 'feature_info', None)
        if callable(getattr(info, 'channels', None)):      # FeatureListNet
            return int(info.channels()[-1])
        expected = getattr(timm_model, 'head_hidden_size', None) or getattr(
            timm_model, 'num_features', None)
        out = _dry_forward(timm_model, timm_model, _in_chans(backbone),
                           _dry_sizes(timm_model))
        if out.dim() != 4:
            name = getattr(timm_model, 'default_cfg', {}).get('architecture', '')
            raise ValueError(
                f"in_channels='auto': TIMMBackbone(model_name='{name}', features_only=False) "
                f'returns a {out.dim()}-d tensor of shape {tuple(out.shape)} (a token '
                f'sequence, {expected} channels), not (B, C, H, W) maps that '
                'GlobalAveragePooling and the heads of this package expect: set '
                "features_only=True in model.backbone (timm then returns NCHW maps of its "
                'last blocks).')
        return int(out.shape[1])
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


def _in_chans(backbone: nn.Module) -> int:
    """Image channels a backbone takes: its ``in_channels`` attribute, else the input
    channels of its first 4-d (convolution / patch-embedding) weight."""
    chans = getattr(backbone, 'in_channels', None)
    if isinstance(chans, int):
        return chans
    for param in backbone.parameters():
        if param.dim() == 4:
            return int(param.shape[1])
    return 3


def neck_feat_size(backbone: nn.Module, neck_cfg: dict) -> Tuple[int, int]:
    """``(H, W)`` of the map a neck receives for images of ``neck_cfg['input_size']``, by one
    dry forward (eval mode, no autograd) of the trunk (``placement='before_last_stage'``)
    or of the whole backbone."""
    size = neck_cfg['input_size']
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(s, int) and s > 0 for s in size)):
        raise ValueError(f"{neck_cfg.get('type')}: input_size must be (H, W) of the training "
                         f'images, two positive ints, got {size!r}.')
    if _arg_default(neck_cfg, 'placement') == 'before_last_stage':
        if not callable(getattr(backbone, 'forward_trunk', None)):
            raise ValueError(
                f"{neck_cfg.get('type')}(placement='before_last_stage') needs a split "
                f'backbone (TimmSplitBackbone), got {type(backbone).__name__}.')
        fn = backbone.forward_trunk
    else:
        fn = backbone
    out = _dry_forward(backbone, fn, _in_chans(backbone), [tuple(size)])
    if out.dim() != 4:
        raise ValueError(f"{neck_cfg.get('type')}: the backbone returns a tensor of shape "
                         f'{tuple(out.shape)}, not (B, C, H, W) maps; its feat_size cannot '
                         'be derived (with TIMMBackbone set features_only=True).')
    return int(out.shape[-2]), int(out.shape[-1])


def _needs_feat_size(neck) -> bool:
    return (isinstance(neck, dict) and neck.get('input_size') is not None
            and neck.get('feat_size') is None)


def resolve_auto_channels(backbone: ModuleOrCfg, neck: ModuleOrCfg, head: ModuleOrCfg
                          ) -> Tuple[ModuleOrCfg, ModuleOrCfg, ModuleOrCfg]:
    """Build what ``'auto'`` depends on and fill it in.

    Only when the neck or head config holds an ``'auto'`` value, or the neck an
    ``input_size`` without ``feat_size`` (AFANeck's linear Q/K/V, filled with
    :func:`neck_feat_size`), is the backbone (and then the neck) built here, exactly as
    ``ImageClassifier`` would build it; otherwise the three parts pass through untouched.
    The head's ``in_channels`` becomes the neck's ``out_channels`` when the neck has one
    (RSANeck), else the backbone's channels (pooling necks, AFANeck, no neck);
    ``global_channels`` / ``local_channels`` become the backbone's.
    """
    def has_auto(cfg, keys) -> bool:
        return isinstance(cfg, dict) and any(cfg.get(k) == AUTO for k in keys)

    head_keys = ('in_channels', ) + _BACKBONE_CHANNEL_KEYS
    if not (has_auto(neck, ('in_channels', )) or has_auto(head, head_keys)
            or _needs_feat_size(neck)):
        return backbone, neck, head
    if not isinstance(backbone, nn.Module):
        backbone = MODELS.build(backbone)
    if has_auto(neck, ('in_channels', )):
        neck = dict(neck, in_channels=neck_input_channels(backbone, neck))
    if _needs_feat_size(neck):
        neck = dict(neck, feat_size=neck_feat_size(backbone, neck))
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

    A training batch of one image that reaches a BatchNorm layer with a 1x1 map (one value
    per channel) makes PyTorch fail with "Expected more than 1 value per channel";
    :meth:`forward` (``mode='loss'``, also reached through mmengine's DDP wrapper, which
    bypasses ``train_step``) turns that into an error naming
    ``train_dataloader.drop_last`` and the batch size (typically the last batch of an
    epoch, ``len(dataset) % batch_size == 1``). Catching the failure costs nothing per
    step, unlike a check on every layer.
    """

    def __init__(self, backbone: ModuleOrCfg, neck: Optional[ModuleOrCfg] = None,
                 head: Optional[ModuleOrCfg] = None, *args, **kwargs) -> None:
        if isinstance(backbone, dict) and 'model_name' in backbone and getattr(
                backbone.get('type'), '__name__', backbone.get('type')) in TIMM_BACKBONES:
            check_timm_model_name(backbone['model_name'])  # close matches when unknown
        backbone, neck, head = resolve_auto_channels(backbone, neck, head)
        super().__init__(backbone, neck, head, *args, **kwargs)

    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """``ImageClassifier.forward``; a BatchNorm failure on a batch of one in
        ``mode='loss'`` gets a hint."""
        if mode != 'loss':
            return super().forward(inputs, data_samples, mode)
        try:
            return super().forward(inputs, data_samples, mode)
        except ValueError as err:
            if 'Expected more than 1 value per channel when training' not in str(err):
                raise
            size = len(inputs) if isinstance(inputs, (list, tuple, torch.Tensor)) else '?'
            raise ValueError(
                f'A training batch of {size} image(s) reached a BatchNorm layer with one '
                f'value per channel ({err}). This is usually the '
                'last batch of an epoch, when len(train set) % train_dataloader.batch_size '
                '== 1: set train_dataloader.drop_last=True in the config (or '
                '--cfg-options train_dataloader.drop_last=True), or change '
                'train_dataloader.batch_size.') from err
