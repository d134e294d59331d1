"""CIFAR ResNets of the LDAM protocol (Cao et al. 2019), registered as timm models.

``resnet32_cifar`` is the network every CIFAR-LT paper of this package reports with:
a 3x3 stem of 16 channels, three stages of 5 basic blocks with 16 / 32 / 64 channels
(strides 1 / 2 / 2), global average pooling and a linear classifier (~0.46 M parameters).
Shortcuts that change shape use LDAM's "option A" (stride-2 subsampling plus zero-padded
channels, parameter-free); ``shortcut='conv'`` gives the 1x1-conv "option B".

Registered in timm's model registry, so MMPretrain configs name it like any timm model::

    backbone=dict(type='TIMMBackbone', model_name='resnet32_cifar')

and ``timm.create_model('resnet32_cifar', features_only=True)`` gives a ``FeatureListNet``
whose top-level modules run in order (``conv1, bn1, act1, layer1, layer2, layer3``).
No pretrained weights exist for it.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model


class _ZeroPadShortcut(nn.Module):
    """LDAM "option A" shortcut: subsample spatially and zero-pad the new channels."""

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad = out_chs - in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        half = self.pad // 2
        return F.pad(x, (0, 0, 0, 0, half, self.pad - half))


class CifarBasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection."""

    expansion = 1

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1,
                 shortcut: str = 'zero_pad') -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.act2 = nn.ReLU(inplace=True)
        if stride == 1 and in_chs == out_chs:
            self.downsample = nn.Identity()
        elif shortcut == 'zero_pad':
            self.downsample = _ZeroPadShortcut(in_chs, out_chs, stride)
        elif shortcut == 'conv':
            self.downsample = nn.Sequential(
                nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), nn.BatchNorm2d(out_chs))
        else:
            raise ValueError(f"shortcut must be 'zero_pad' or 'conv', got {shortcut!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.downsample(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs with timm's model interface.

    Args:
        depths: blocks per stage, e.g. ``(5, 5, 5)`` for ResNet-32.
        widths: channels per stage. Defaults to ``(16, 32, 64)``.
        num_classes: classifier outputs; 0 removes the classifier.
        in_chans: input channels.
        global_pool: ``'avg'`` or ``''`` (no pooling: ``forward`` returns the map).
        shortcut: ``'zero_pad'`` (LDAM option A) or ``'conv'``.
        drop_rate: dropout before the classifier.
    """

    def __init__(self, depths: Sequence[int] = (5, 5, 5),
                 widths: Sequence[int] = (16, 32, 64), num_classes: int = 10,
                 in_chans: int = 3, global_pool: str = 'avg', shortcut: str = 'zero_pad',
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        if len(depths) != len(widths):
            raise ValueError(f'depths {tuple(depths)} and widths {tuple(widths)} differ in length')
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act1 = nn.ReLU(inplace=True)
        self.feature_info: List[Dict] = [dict(num_chs=widths[0], reduction=1, module='act1')]
        in_chs, reduction = widths[0], 1
        for stage, (depth, width) in enumerate(zip(depths, widths)):
            stride = 1 if stage == 0 else 2
            reduction *= stride
            blocks = [CifarBasicBlock(in_chs if i == 0 else width, width,
                                      stride if i == 0 else 1, shortcut)
                      for i in range(depth)]
            self.add_module(f'layer{stage + 1}', nn.Sequential(*blocks))
            self.feature_info.append(
                dict(num_chs=width, reduction=reduction, module=f'layer{stage + 1}'))
            in_chs = width
        self.num_stages = len(depths)
        self.num_features = self.head_hidden_size = in_chs
        self.global_pool = global_pool
        self.fc = nn.Linear(in_chs, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        # LDAM initialises every conv and linear layer with Kaiming normal.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)
                if getattr(module, 'bias', None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    # timm model interface ---------------------------------------------------
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        if global_pool is not None:
            if global_pool not in ('avg', ''):
                raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        for stage in range(1, self.num_stages + 1):
            x = getattr(self, f'layer{stage}')(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'avg':
            x = x.mean(dim=(2, 3))
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cfg(**kwargs) -> Dict:
    return dict(url='', num_classes=10, input_size=(3, 32, 32), pool_size=(8, 8),
                crop_pct=1.0, interpolation='bilinear', mean=(0.4914, 0.4822, 0.4465),
                std=(0.2470, 0.2435, 0.2616), first_conv='conv1', classifier='fc', **kwargs)


default_cfgs = generate_default_cfgs({
    'resnet20_cifar.untrained': _cfg(),
    'resnet32_cifar.untrained': _cfg(),
    'resnet44_cifar.untrained': _cfg(),
    'resnet56_cifar.untrained': _cfg(),
})


def _create(variant: str, depth_per_stage: int, pretrained: bool, **kwargs) -> CifarResNet:
    if pretrained:
        raise RuntimeError(
            f'{variant} has no published pretrained weights. Set pretrained=False, or load '
            'your own file with checkpoint_path=... (TIMMBackbone) or '
            "init_cfg=dict(type='Pretrained', checkpoint=...).")
    kwargs.setdefault('depths', (depth_per_stage,) * 3)
    return build_model_with_cfg(
        CifarResNet, variant, pretrained=False,
        feature_cfg=dict(out_indices=(0, 1, 2, 3)), **kwargs)


@register_model
def resnet20_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-20 for CIFAR (3 stages x 3 basic blocks)."""
    return _create('resnet20_cifar', 3, pretrained, **kwargs)


@register_model
def resnet32_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-32 for CIFAR as in LDAM (3 stages x 5 basic blocks, 16/32/64 channels)."""
    return _create('resnet32_cifar', 5, pretrained, **kwargs)


@register_model
def resnet44_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-44 for CIFAR (3 stages x 7 basic blocks)."""
    return _create('resnet44_cifar', 7, pretrained, **kwargs)


@register_model
def resnet56_cifar(pretrained: bool = False, **kwargs) -> CifarResNet:
    """ResNet-56 for CIFAR (3 stages x 9 basic blocks)."""
    return _create('resnet56_cifar', 9, pretrained, **kwargs)
