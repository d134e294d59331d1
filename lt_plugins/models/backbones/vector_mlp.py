"""A multi-layer perceptron backbone for pre-extracted feature vectors ``(N, D)``."""
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


def check_vector_input(x: torch.Tensor, in_channels: int, owner: str) -> None:
    """Refuse anything but ``(N, in_channels)`` with a message naming the config field."""
    if x.dim() != 2 or x.size(1) != in_channels:
        raise ValueError(
            f'{owner}: expected inputs of shape (N, {in_channels}), got {tuple(x.shape)}; set '
            '`backbone.in_channels` to the dataset\'s feature dimension (FeatureVectorDataset '
            '`feature_dim`) and use a data preprocessor without image normalisation.')


@MODELS.register_module()
class VectorMLP(BaseModule):
    """MLP over feature vectors: ``[Linear -> BatchNorm1d -> ReLU -> Dropout] x L``.

    The backbone of the vector setting (IEM Sec. 4.3.2: video-level YouTube-8M features; the
    paper's NetVLAD model works on frame features, which this package does not read). With
    ``hidden_channels=()`` it is the identity, so a linear head on top is YouTube-8M's
    "video-level logistic" baseline. Takes ``(N, D)`` and returns a one-tuple ``((N, C_out),)``
    as MMPretrain backbones do, so ``ImageClassifier`` with ``neck=None`` and
    ``ClsDataPreprocessor`` (no ``mean`` / ``std``) run it unchanged.

    Args:
        in_channels (int): input dimension ``D``.
        hidden_channels (int | Sequence[int]): widths of the hidden layers. Defaults to
            ``(1024, )``.
        dropout (float): dropout after each hidden layer. Defaults to 0.
        norm (bool): BatchNorm1d after each linear layer. Defaults to True.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self, in_channels: int, hidden_channels: Union[int, Sequence[int]] = (1024, ),
                 dropout: float = 0.0, norm: bool = True, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(in_channels) < 1:
            raise ValueError(f'VectorMLP: in_channels={in_channels} must be >= 1.')
        hidden = ((int(hidden_channels), ) if isinstance(hidden_channels, int)
                  else tuple(int(h) for h in hidden_channels))
        self.in_channels = int(in_channels)
        layers, width = [], self.in_channels
        for h in hidden:
            layers += [nn.Linear(width, h)] + ([nn.BatchNorm1d(h)] if norm else [])
            layers += [nn.ReLU(inplace=True)] + ([nn.Dropout(dropout)] if dropout else [])
            width = h
        self.layers = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        check_vector_input(x, self.in_channels, type(self).__name__)
        return (self.layers(x), )
