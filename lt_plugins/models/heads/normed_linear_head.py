"""Cosine (normalised linear) classification head, the classifier LDAM is defined on."""
import copy
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS


def fill_loss_scale(loss: dict, scale: float, who: str) -> dict:
    """Give an ``LDAMLoss`` config the head's logit scale (or check the one it names)."""
    loss = copy.deepcopy(loss)
    if loss.get('type') in ('LDAMLoss', 'lt_plugins.LDAMLoss'):
        if 'scale' not in loss:
            loss['scale'] = scale
        elif float(loss['scale']) != float(scale):
            raise ValueError(f'{who}: loss.scale={loss["scale"]} differs from the head\'s logit '
                             f'scale {scale}; drop `scale` from the loss config.')
    return loss


@MODELS.register_module()
class NormedLinearClsHead(ClsHead):
    """Linear head on L2-normalised features and weights: ``logits = s * cos(w_c, x)``.

    LDAM (Cao et al. 2019, Sec. 3.2 / the CIFAR code's ``NormedLinear``) puts its margins on
    a cosine classifier with scale ``s``; this head returns the scaled logits, and an
    ``LDAMLoss`` in ``loss`` gets the head's ``scale`` filled in (it subtracts ``s * m_y``).
    Prediction is the argmax of the same logits.

    Args:
        num_classes (int): number of classes.
        in_channels (int): feature dimension (``'auto'`` via ``AutoChannelClassifier``).
        scale (float): ``s``. Defaults to 30 (LDAM, RIDE).
        loss (dict): loss config. Defaults to ``dict(type='LDAMLoss')``.
        topk, cal_acc, init_cfg: as in :class:`mmpretrain.models.heads.ClsHead`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 scale: float = 30.0,
                 loss: dict = dict(type='LDAMLoss'),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss=fill_loss_scale(loss, scale, 'NormedLinearClsHead'), topk=topk,
                         cal_acc=cal_acc, init_cfg=init_cfg)
        if num_classes is None or int(num_classes) < 1:
            raise ValueError(f'NormedLinearClsHead: num_classes must be >= 1, got {num_classes}.')
        if scale <= 0:
            raise ValueError(f'NormedLinearClsHead: scale must be > 0, got {scale}.')
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.in_channels))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def set_class_counts(self, counts) -> None:
        n = torch.as_tensor(counts).numel()
        if n != self.num_classes:
            raise ValueError(f'NormedLinearClsHead: num_classes={self.num_classes} but the '
                             f'training set has {n} classes: set model.head.num_classes={n}.')

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        x = self.pre_logits(feats)
        return self.scale * F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).t()
