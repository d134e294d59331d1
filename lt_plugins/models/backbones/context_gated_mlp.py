"""A context-gated MLP backbone for feature vectors (Miech et al., 2017)."""
from typing import Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .vector_mlp import check_vector_input


@MODELS.register_module()
class ContextGatedMLP(BaseModule):
    """One hidden layer followed by Context Gating, for ``(N, D)`` feature vectors.

    ``h = ReLU(BN(W_1 x))``, ``y = h * sigmoid(BN(W_g h))`` -- Context Gating of Miech, Laptev
    and Sivic, "Learnable pooling with Context Gating for video classification" (2017, Eq. 2),
    the gating used by the YouTube-8M 2017 winners on top of video-level features. Returns
    ``((N, hidden_channels),)``.

    Args:
        in_channels (int): input dimension ``D``.
        hidden_channels (int): width of the hidden layer and the output. Defaults to 1024.
        dropout (float): dropout on the hidden layer. Defaults to 0.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    def __init__(self, in_channels: int, hidden_channels: int = 1024, dropout: float = 0.0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(in_channels) < 1 or int(hidden_channels) < 1:
            raise ValueError(f'ContextGatedMLP: in_channels={in_channels} and hidden_channels='
                             f'{hidden_channels} must be >= 1.')
        self.in_channels = int(in_channels)
        self.out_channels = int(hidden_channels)
        self.hidden = nn.Sequential(nn.Linear(self.in_channels, self.out_channels),
                                    nn.BatchNorm1d(self.out_channels), nn.ReLU(inplace=True),
                                    nn.Dropout(dropout) if dropout else nn.Identity())
        self.gate = nn.Sequential(nn.Linear(self.out_channels, self.out_channels),
                                  nn.BatchNorm1d(self.out_channels))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        check_vector_input(x, self.in_channels, type(self).__name__)
        h = self.hidden(x)
        return (h * torch.sigmoid(self.gate(h)), )
