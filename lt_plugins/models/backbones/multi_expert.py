"""A timm CNN with a shared trunk and K expert copies of its last stage(s) (RIDE)."""
import copy
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .timm_split import TimmSplitBackbone


def _round8(value: float) -> int:
    return max(8, int(round(value / 8.0)) * 8)


def _width_kwargs(model_name: str, tail_stages: int, factor: float, kwargs: dict) -> dict:
    """timm arguments that scale the widths of the last ``tail_stages`` stages by ``factor``."""
    import timm
    if factor <= 0:
        raise ValueError(f'MultiExpertBackbone: width_factor must be > 0, got {factor}.')
    probe = timm.create_model(model_name, pretrained=False, **kwargs)
    cls = type(probe).__name__
    if cls == 'CifarResNet':
        name = 'widths'
        widths = [int(f['num_chs']) for f in probe.feature_info[1:]]
    elif cls == 'ResNet':
        name = 'channels'
        expansion = type(probe.layer1[0]).expansion
        widths = [int(f['num_chs']) // expansion for f in probe.feature_info[1:]]
    elif cls == 'ConvNeXt':
        name = 'dims'
        widths = [int(f['num_chs']) for f in probe.feature_info]
    else:
        raise ValueError(
            f"MultiExpertBackbone: width_factor={factor} is not mapped for '{model_name}' "
            f'({cls}); supported are resnet*_cifar, timm ResNet/ResNeXt and ConvNeXt. Set '
            'width_factor=1.0, or give the width argument of this family in expert_kwargs.')
    scaled = widths[:len(widths) - tail_stages] + [
        _round8(w * factor) for w in widths[len(widths) - tail_stages:]]
    return {name: tuple(scaled)}


@MODELS.register_module()
class MultiExpertBackbone(BaseModule):
    """Shared trunk and ``num_experts`` expert branches, for RIDE (Wang et al., ICLR 2021).

    RIDE (Sec. 3.1, Fig. 2) shares the early stages of a network among all experts and gives
    each expert its own copy of the later stage(s) plus its own classifier. Built on
    :class:`~lt_plugins.models.backbones.TimmSplitBackbone`'s public interface: the first build
    gives ``trunk`` (stem .. stage ``-1 - tail_stages``); each expert's branch is the ``tail``
    of a separate build of the same timm model, so every expert gets timm's own
    initialisation with independent random draws (or the same pretrained weights, with
    ``pretrained=True``), and works with any CNN that ``TimmSplitBackbone`` supports.

    Narrower experts (RIDE's ``reduce_dimension``): ``width_factor`` scales the channel widths
    of the copied stages (rounded to a multiple of 8), e.g. 0.75 gives RIDE's CIFAR experts
    (ResNet-32: 24 / 48 channels instead of 32 / 64) and its ImageNet ResNe(X)t experts
    (192 / 384 planes instead of 256 / 512). timm has no width argument common to all CNNs,
    so the factor is mapped per family: ``widths`` of ``resnet*_cifar``, ``channels`` of
    timm's ResNet / ResNeXt, ``dims`` of ConvNeXt; other families raise a ValueError when the
    factor is not 1 (use ``expert_kwargs`` there). ``expert_kwargs`` are further
    ``timm.create_model`` arguments for the expert builds only; the experts must accept what
    the shared trunk outputs (checked).

    ``forward(x)`` returns one feature map per expert, ``(f_1, ..., f_K)``, so MMPretrain's
    ``GlobalAveragePooling`` neck pools each and a multi-expert head
    (:class:`~lt_plugins.models.heads.RIDEHead`) receives ``K`` feature vectors.
    :class:`~lt_plugins.models.classifiers.RIDEClassifier` uses :meth:`forward_trunk` and
    :meth:`forward_expert` to run experts on demand (the router). Parameters live under
    ``backbone.trunk.*`` and ``backbone.experts.<k>.*``.

    Args:
        model_name (str): timm model name (``'resnet32_cifar'``, ``'resnext50_32x4d'``, ...).
        num_experts (int): ``K``. Defaults to 4 (the MBJ tables' "RIDE (4 experts)").
        tail_stages (int): trailing stages copied per expert. Defaults to 1; RIDE's CIFAR
            ResNet-32 shares only the first stage (``tail_stages=2``), its ImageNet ResNets
            share the first two (``tail_stages=2``).
        pretrained (bool): load timm's pretrained weights into trunk and every expert.
        width_factor (float): width of the expert stages relative to the model's. Defaults
            to 1.0 (RIDE's ``reduce_dimension``: 0.75).
        expert_kwargs (dict, optional): extra timm arguments for the expert builds (width).
        in_channels (int): input image channels. Defaults to 3.
        init_cfg (dict, optional): mmengine init config.
        **kwargs: passed to every ``timm.create_model`` call.
    """

    def __init__(self,
                 model_name: str,
                 num_experts: int = 4,
                 tail_stages: int = 1,
                 pretrained: bool = False,
                 width_factor: float = 1.0,
                 expert_kwargs: Optional[dict] = None,
                 in_channels: int = 3,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(num_experts) < 1:
            raise ValueError(f'MultiExpertBackbone: num_experts must be >= 1, got {num_experts}.')
        self.model_name = model_name
        self.num_experts = int(num_experts)
        self.in_channels = in_channels
        first = TimmSplitBackbone(model_name, pretrained=pretrained, tail_stages=tail_stages,
                                  in_channels=in_channels, **kwargs)
        self.trunk = first.trunk
        self.trunk_channels: int = first.trunk_channels
        self.trunk_reduction: int = first.trunk_reduction
        expert_cfg = dict(kwargs, **(expert_kwargs or {}))
        if float(width_factor) != 1.0:
            expert_cfg.update(_width_kwargs(model_name, tail_stages, float(width_factor),
                                            kwargs))
        self.width_factor = float(width_factor)
        experts = []
        out_channels = None
        for k in range(self.num_experts):
            if k == 0 and expert_cfg == kwargs:
                build = first
            else:
                build = TimmSplitBackbone(model_name, pretrained=pretrained,
                                          tail_stages=tail_stages, in_channels=in_channels,
                                          **copy.deepcopy(expert_cfg))
            if build.trunk_channels != self.trunk_channels:
                raise ValueError(
                    f'MultiExpertBackbone: with expert_kwargs={expert_kwargs} the experts of '
                    f"'{model_name}' expect {build.trunk_channels} input channels but the shared "
                    f'trunk gives {self.trunk_channels}: change only the widths of the last '
                    f'{tail_stages} stage(s).')
            if out_channels not in (None, build.out_channels):
                raise ValueError('MultiExpertBackbone: experts differ in output channels.')
            out_channels = build.out_channels
            experts.append(build.tail)
        self.experts = nn.ModuleList(experts)
        self.out_channels: int = int(out_channels)
        self.tail_module_names: Tuple[str, ...] = first.tail_module_names

    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The shared stages: ``(B, C_trunk, H', W')``."""
        return self.trunk(x)

    def forward_expert(self, shared: torch.Tensor, k: int) -> torch.Tensor:
        """Expert ``k``'s branch on (a subset of) the shared features."""
        return self.experts[k](shared)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(f_1, ..., f_K)``: every expert's last feature map."""
        shared = self.forward_trunk(x)
        return tuple(expert(shared) for expert in self.experts)
