"""The plain ResNet-10 of OLTR (Liu et al., CVPR 2019), registered as the timm model ``resnet10``.

ImageNet-LT papers that train "ResNet-10 from scratch" (OLTR, IEM, ...) use torchvision's
ResNet with basic blocks ``[1, 1, 1, 1]`` (64 / 128 / 256 / 512 channels) and the plain stem
(7x7 conv stride 2, 3x3 max-pool), about 4.9 M parameters without the classifier. timm
ships only ``resnet10t`` (deep tiered stem, average-pool shortcuts), a different network, and
no plain ``resnet10``, so this module registers one::

    backbone=dict(type='TIMMBackbone', model_name='resnet10')

It is timm's own ``ResNet`` class, so ``features_only=True``, ``out_indices`` and every
other timm option work as for ``resnet18``. No pretrained weights exist for it.
"""
from timm.models import (build_model_with_cfg, generate_default_cfgs, is_model,
                         model_entrypoint, register_model)
from timm.models.resnet import BasicBlock, ResNet

_NAME = 'resnet10'


def _cfg(**kwargs) -> dict:
    return {
        'url': '', 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bilinear',
        'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225),
        'first_conv': 'conv1', 'classifier': 'fc', 'license': 'apache-2.0', **kwargs
    }


def _timm_has_own(name: str) -> bool:
    """Whether timm already registers ``name`` from another module."""
    return is_model(name) and model_entrypoint(name).__module__ != __name__


_NAME = 'resnet10_oltr' if _timm_has_own('resnet10') else 'resnet10'


def _resnet10(pretrained: bool = False, **kwargs) -> ResNet:
    """Plain ResNet-10 (OLTR): BasicBlock x [1, 1, 1, 1], 7x7 stem + max-pool."""
    model_args = dict(block=BasicBlock, layers=(1, 1, 1, 1))
    return build_model_with_cfg(ResNet, _NAME, pretrained, **dict(model_args, **kwargs))


# timm registers an entrypoint under its function name and reads the module's default_cfgs.
# A future timm that ships its own plain ``resnet10`` keeps that name; ours is then
# ``resnet10_oltr``.
_resnet10.__name__ = _NAME
default_cfgs = generate_default_cfgs({f'{_NAME}.untrained': _cfg()})
resnet10 = register_model(_resnet10)

__all__ = ['resnet10']
