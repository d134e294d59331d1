"""The Semantic Transformation Generator (STG, Eq. 2) with its class tokens and head-class
prototypes."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from lt_plugins.memory.rebalanced_fifo import gather_in_rank_order

SIGMA_ACTIVATIONS = ('softplus', 'exp')


def _mlp(in_dim: int, hidden: int, out_dim: int, num_layers: int) -> nn.Sequential:
    """``num_layers - 1`` blocks of Linear-BN-ReLU followed by a Linear output layer."""
    layers, d = [], in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


@MODELS.register_module()
class SemanticTransformationGenerator(BaseModule):
    """Predicts a per-sample Gaussian of semantic transformations from a feature (Eq. 2).

    ``mu_hat, Sigma_hat = s(a + p_y)``: two MLPs (Linear-BN-ReLU blocks, then Linear) read the
    feature plus a learnable class token ``p_y`` (``N(0, token_std^2)`` initialisation) and
    output the mean ``mu_hat`` and the diagonal variance ``Sigma_hat`` (kept positive by a
    softplus or exp). At stage 3 a tail sample, whose own token was never trained, uses the
    token of its most similar head class (:meth:`select_head_class`).

    The generator also accumulates, while it is trained, the mean feature of every class it
    sees (``proto_sum / proto_count``, all-gathered under DDP): the prototypes that measure
    that similarity. ``trained_iters`` counts stage-2 updates, so stage 3 can refuse an
    untrained generator.

    Args:
        in_channels (int): feature dimension ``d``.
        num_classes (int): number of classes ``C`` (one token each).
        hidden_channels (int, optional): MLP width. Defaults to ``in_channels``.
        num_layers (int): layers per MLP (>= 2: at least one Linear-BN-ReLU block). Defaults
            to 2.
        sigma_activation (str): ``'softplus'`` (default) or ``'exp'``.
        token_std (float): standard deviation of the token initialisation. Defaults to 1.0
            (the paper's ``N(0, 1)``).
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 hidden_channels: Optional[int] = None,
                 num_layers: int = 2,
                 sigma_activation: str = 'softplus',
                 token_std: float = 1.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(num_layers) < 2:
            raise ValueError(f'generator num_layers must be >= 2 (Linear-BN-ReLU + Linear), '
                             f'got {num_layers}: set `generator.num_layers`.')
        if sigma_activation not in SIGMA_ACTIVATIONS:
            raise ValueError(f'generator sigma_activation={sigma_activation!r}: choose one '
                             f'of {SIGMA_ACTIVATIONS}.')
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        hidden = int(hidden_channels or in_channels)
        self.sigma_activation = sigma_activation
        self.token_std = float(token_std)
        self.tokens = nn.Parameter(torch.randn(self.num_classes, self.in_channels) *
                                   self.token_std)
        self.mu_mlp = _mlp(self.in_channels, hidden, self.in_channels, int(num_layers))
        self.sigma_mlp = _mlp(self.in_channels, hidden, self.in_channels, int(num_layers))
        self.register_buffer('proto_sum', torch.zeros(self.num_classes, self.in_channels,
                                                      dtype=torch.float64))
        self.register_buffer('proto_count', torch.zeros(self.num_classes, dtype=torch.long))
        self.register_buffer('trained_iters', torch.zeros((), dtype=torch.long))

    def init_weights(self) -> None:
        """PyTorch's default Linear/BN initialisation (undoing a parent head's ``Normal``
        ``init_cfg``, which reaches every Linear below it) unless ``init_cfg`` is given; the
        tokens are re-drawn from ``N(0, token_std^2)``."""
        if self.init_cfg is None:
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.BatchNorm1d)):
                    m.reset_parameters()
        super().init_weights()
        with torch.no_grad():
            self.tokens.normal_(0.0, self.token_std)

    def forward(self, feats: torch.Tensor,
                token_labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Eq. 2: ``(mu_hat, Sigma_hat)`` of shape ``(B, d)`` for features ``a`` and the
        classes whose tokens are added to them."""
        x = feats + self.tokens[token_labels.long()].to(feats.dtype)
        mu = self.mu_mlp(x)
        raw = self.sigma_mlp(x)
        sigma = F.softplus(raw) if self.sigma_activation == 'softplus' else raw.exp()
        return mu, sigma

    # -- head-class prototypes ------------------------------------------------------------
    @torch.no_grad()
    def update_prototypes(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Add features to the running class sums (all ranks' batches, vectorised)."""
        feats, labels = gather_in_rank_order(feats.detach().float(), labels.reshape(-1).long())
        self.proto_sum.index_add_(0, labels, feats.to(self.proto_sum))
        self.proto_count += torch.bincount(labels, minlength=self.num_classes)

    def prototypes(self) -> torch.Tensor:
        """``(C, d)`` mean feature of each class seen in stage 2 (zero rows for unseen)."""
        return (self.proto_sum / self.proto_count.clamp_min(1)[:, None]).float()

    def select_head_class(self, feats: torch.Tensor, head_mask: torch.Tensor,
                          metric: str = 'cosine') -> torch.Tensor:
        """Most similar head class of each sample (whose token it borrows at stage 3).

        Similarity is measured between the sample's feature and the head-class prototypes
        (mean stage-2 feature of each head class): ``'cosine'`` (default; cosine similarity,
        insensitive to the feature norm, which varies with image contrast) or ``'euclidean'``
        (nearest prototype).

        Args:
            feats (Tensor): ``(B, d)``.
            head_mask (Tensor): ``(C,)`` bool, the head classes.
            metric (str): ``'cosine'`` or ``'euclidean'``.

        Returns:
            Tensor: ``(B,)`` long class indices, all in the head set.
        """
        head_idx = head_mask.nonzero(as_tuple=True)[0]
        missing = head_idx[self.proto_count[head_idx] == 0]
        if missing.numel():
            raise RuntimeError(
                f'STG: head classes {missing.tolist()[:10]} have no prototype: the generator '
                'was not trained on them in stage 2. Load the stage-2 checkpoint (`load_from`) '
                'and use the same `head_threshold` in both stages.')
        protos = self.prototypes()[head_idx].to(feats)
        if metric == 'cosine':
            sim = F.normalize(feats, dim=1) @ F.normalize(protos, dim=1).t()
        elif metric == 'euclidean':
            sim = -torch.cdist(feats, protos)
        else:
            raise ValueError(f'token selection metric={metric!r}: choose cosine or euclidean '
                             '(`model.head.token_metric`).')
        return head_idx[sim.argmax(dim=1)]
