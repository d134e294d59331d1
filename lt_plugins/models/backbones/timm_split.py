"""A timm CNN split into a trunk and a tail (the last stage), for necks that sit between them."""
from collections import OrderedDict
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .timm_names import check_timm_model_name

try:  # timm >= 0.9
    from timm.models._features import FeatureDictNet
except ImportError:  # pragma: no cover - older timm layout
    from timm.models.features import FeatureDictNet


def _unsupported(model_name: str, why: str) -> ValueError:
    return ValueError(
        f"TimmSplitBackbone: timm model '{model_name}' cannot be split before its last "
        f'stage: {why}. Supported are CNNs that timm turns into a FeatureListNet of '
        'top-level modules run in order (ResNet/ResNet-D/ResNeXt, ConvNeXt, RegNet, '
        'DenseNet, EfficientNet, MobileNetV3/V4, resnet32_cifar, ...). For other models put '
        "the neck after the last stage instead (e.g. AFANeck(placement='after_last_stage') "
        "with backbone=dict(type='TIMMBackbone', model_name=..., features_only=True)).")


def _build_feature_list(timm, model_name: str, **kwargs) -> nn.Module:
    """``timm.create_model(features_only=True)``, as a ``FeatureListNet`` where timm can.

    Most timm CNNs give a ``FeatureListNet`` directly. The EfficientNet / MobileNet
    builders give their own feature class (``EfficientNetFeatures``, ...) unless a
    ``feature_cfg`` is passed; with ``feature_cfg=dict(flatten_sequential=True)`` timm
    builds the ``FeatureListNet`` from the model's ``feature_info`` stage indices instead,
    flattening ``blocks.<i>`` into top-level ``blocks_<i>`` so that the stage boundaries
    become cut points. Models whose builder sets ``feature_cfg`` itself (DenseNet,
    GhostNet, ViT, ...) refuse the second form with a TypeError and keep the first.
    """
    try:
        body = timm.create_model(model_name, features_only=True, **kwargs)
    except RuntimeError as err:  # timm: "features_only not implemented for ..."
        if 'Unknown model' in str(err):
            raise
        raise _unsupported(model_name, f'timm refused features_only=True ({err})') from err
    if isinstance(body, FeatureDictNet):
        return body
    try:
        flat = timm.create_model(model_name, features_only=True,
                                 feature_cfg=dict(flatten_sequential=True), **kwargs)
    except (TypeError, RuntimeError, AssertionError):
        flat = None
    if isinstance(flat, FeatureDictNet):
        return flat
    if hasattr(body, 'model') and hasattr(getattr(body, 'model'), 'patch_embed'):
        why = ('it is a transformer over a token sequence (with prefix / class tokens): its '
               'blocks pass tokens, not NCHW maps, so there is no feature map between two '
               'stages for the neck to rewrite and hand on')
    else:
        why = (f'features_only=True gives a {type(body).__name__}, not a FeatureListNet of '
               'sequential top-level modules')
    raise _unsupported(model_name, why)


def _use_cifar_stem(body: nn.Module, model_name: str) -> int:
    """Swap a ResNet-family stem for the CIFAR one in place; returns the removed stride."""
    conv, pool = getattr(body, 'conv1', None), getattr(body, 'maxpool', None)
    if not isinstance(conv, nn.Conv2d) or not isinstance(pool, nn.MaxPool2d):
        raise ValueError(
            f"TimmSplitBackbone(cifar_stem=True): '{model_name}' has no ResNet-style stem "
            '(a single Conv2d `conv1` and a MaxPool2d `maxpool`); use a ResNet / ResNeXt '
            'model or leave cifar_stem=False.')
    removed = int(conv.stride[0]) * int(pool.stride if isinstance(pool.stride, int) else
                                          pool.stride[0])
    body.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=1, padding=1,
                           bias=conv.bias is not None)
    body.maxpool = nn.Identity()
    return removed


@MODELS.register_module()
class TimmSplitBackbone(BaseModule):
    """Any timm CNN, split into ``trunk`` (stem .. penultimate stage) and ``tail`` (last stage).

    timm's ``features_only=True`` re-builds most CNNs as a ``FeatureListNet``: an ordered
    dict of top-level modules (``conv1, bn1, act1, layer1 .. layer4`` for ResNet/ResNeXt,
    ``stem_0, stem_1, stages_0 .. stages_3`` for ConvNeXt, ``stem, s1 .. s4`` for RegNet,
    ``features_*`` for DenseNet) that run one after the other. EfficientNet / MobileNet
    builders return their own feature class instead; for them the ``FeatureListNet`` is
    built from the model's ``feature_info`` stage indices with ``blocks.<i>`` flattened to
    ``blocks_<i>`` (see :func:`_build_feature_list`). Why not ``forward_intermediates``:
    it runs a model from the input up to a stage, but AFA also needs to run the remaining
    stages on a given (generated) map, which only a module sequence offers. Transformers
    (ViT & co.) pass token sequences with prefix tokens between blocks, not maps, and are
    refused with that reason. This backbone cuts that sequence after the module that
    produces the feature level ``-1 - tail_stages`` and keeps both halves as
    ``nn.Sequential`` s, so ``tail(trunk(x))`` is exactly the unsplit network (same modules,
    same order, bit-for-bit the same output). Parameters live under ``backbone.trunk.*`` and
    ``backbone.tail.*``; timm's own pretrained loading happens before the split.

    AFA (Wang et al., Sec. III-B) inserts its module between the third and the fourth
    residual stage so that generated features pass through the last stage:
    :class:`~lt_plugins.models.classifiers.LabelAwareClassifier` calls :meth:`forward_trunk`,
    gives the neck :meth:`forward_tail`, and the neck runs the tail on real + generated
    features. Used on its own (``forward``) the backbone behaves like ``TIMMBackbone`` with
    ``features_only=True, out_indices=(-1,)``.

    Args:
        model_name (str): timm model name, e.g. ``'resnet32_cifar'``, ``'resnext50_32x4d'``,
            ``'convnext_atto'``, ``'regnetx_002'``, ``'efficientnet_b0'``,
            ``'mobilenetv3_small_050'``. An unknown name lists close matches.
        pretrained (bool): load timm's pretrained weights (needs them cached). Defaults to
            False.
        tail_stages (int): number of trailing feature stages that form the tail. Defaults
            to 1 (split between the last two stages, as in the paper).
        in_channels (int): input image channels. Defaults to 3.
        cifar_stem (bool): replace a ResNet-family ImageNet stem (``conv1`` 7x7 stride 2,
            ``maxpool`` stride 2) by the CIFAR stem (3x3 stride-1 ``conv1``, no max-pool), so
            32x32 images keep 4x more resolution: ResNeXt-50 gives 8x8 maps after its third
            stage instead of 2x2. The new ``conv1`` is freshly initialised (with
            ``pretrained=True`` its ImageNet weights are dropped). Defaults to False.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
        **kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).
    """

    def __init__(self,
                 model_name: str,
                 pretrained: bool = False,
                 tail_stages: int = 1,
                 in_channels: int = 3,
                 init_cfg: Optional[dict] = None,
                 cifar_stem: bool = False,
                 **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        import timm
        if tail_stages < 1:
            raise ValueError(
                f'TimmSplitBackbone: tail_stages must be >= 1 (got {tail_stages}); to put a '
                "neck after the last stage use AFANeck(placement='after_last_stage').")
        for forbidden in ('features_only', 'out_indices', 'feature_cls', 'feature_cfg'):
            if forbidden in kwargs:
                raise ValueError(
                    f'TimmSplitBackbone: `{forbidden}` is set by the backbone itself; '
                    'remove it from model.backbone.')
        self.model_name = model_name
        self.in_channels = in_channels
        self.tail_stages = tail_stages
        check_timm_model_name(model_name)
        body = _build_feature_list(timm, model_name, pretrained=pretrained,
                                   in_chans=in_channels, **kwargs)
        fmt = getattr(getattr(body, 'output_fmt', None), 'name', 'NCHW')
        if fmt != 'NCHW':
            raise _unsupported(model_name, f'its features are {fmt}, not NCHW maps')
        names = list(body.keys())
        stem_reduction = _use_cifar_stem(body, model_name) if cifar_stem else 1
        self.cifar_stem = bool(cifar_stem)
        taps = [i for i, name in enumerate(names) if name in body.return_layers]
        if len(taps) < tail_stages + 1:
            raise _unsupported(
                model_name, f'it exposes {len(taps)} feature levels, fewer than '
                f'tail_stages + 1 = {tail_stages + 1}')
        cut = taps[-1 - tail_stages] + 1
        modules = list(body.items())
        self.trunk = nn.Sequential(OrderedDict(modules[:cut]))
        self.tail = nn.Sequential(OrderedDict(modules[cut:]))
        info = body.feature_info
        self.trunk_channels: int = int(info.channels()[-1 - tail_stages])
        self.trunk_reduction: int = int(info.reduction()[-1 - tail_stages]) // stem_reduction
        self.out_channels: int = int(info.channels()[-1])
        self.trunk_module_names: Tuple[str, ...] = tuple(names[:cut])
        self.tail_module_names: Tuple[str, ...] = tuple(names[cut:])

    def trunk_feat_size(self, img_size: Sequence[int]) -> Tuple[int, int]:
        """Spatial size (H, W) of the trunk output for an input of ``img_size``, by a dry run."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                param = next(self.parameters())
                x = torch.zeros(1, self.in_channels, *img_size, dtype=param.dtype,
                                device=param.device)
                h, w = self.forward_trunk(x).shape[-2:]
        finally:
            self.train(was_training)
        return int(h), int(w)

    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Stem up to (and including) the penultimate stage: ``(B, C_trunk, H', W')``."""
        out = self.trunk(x)
        if not isinstance(out, torch.Tensor):
            raise _unsupported(self.model_name,
                               f'its trunk returns a {type(out).__name__}, not a tensor')
        return out

    def forward_tail(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage(s), applied to trunk-shaped features (real or generated)."""
        return self.tail(x)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        """Unsplit forward: ``(tail(trunk(x)),)``, like ``TIMMBackbone`` with one out index."""
        return (self.forward_tail(self.forward_trunk(x)), )
