"""Region self-attention (RSA) neck of IEM (Zhu & Yang, CVPR 2020, Sec. 3.2, Eq. 6-13)."""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


def region_kernels(height: int, width: int, h_max: int, w_max: int) -> List[Tuple[int, int]]:
    """Kernel shapes ``(k_h, k_w)``, ``k_h = 1..h_max``, ``k_w = 1..w_max`` (clipped to the map)."""
    return [(kh, kw) for kh in range(1, min(h_max, height) + 1)
            for kw in range(1, min(w_max, width) + 1)]


def region_boxes(height: int, width: int, h_max: int = 2, w_max: int = 2) -> torch.Tensor:
    """All regions of an ``H x W`` map as ``(R, 4)`` rows ``(top, left, r_h, r_w)``.

    Order of :class:`RSANeck`'s region outputs: kernels ``(1, 1), (1, 2), ..., (h_max,
    w_max)``, each scanned at stride 1 in row-major order (as in area attention, which RSA
    builds on). A 3x3 map with maximum region 2x2 has 9 + 6 + 6 + 4 = 25 regions, the last
    four being the 2x2 windows of the paper's Figure 2.
    """
    rows = []
    for kh, kw in region_kernels(height, width, h_max, w_max):
        for top in range(height - kh + 1):
            for left in range(width - kw + 1):
                rows.append((top, left, kh, kw))
    return torch.tensor(rows, dtype=torch.long).view(-1, 4)


@MODELS.register_module()
class RSANeck(BaseModule):
    """Region self-attention over the last feature map: a global vector plus region features.

    On the last backbone map ``f`` (``B x C x H x W``) every position is mapped to a key
    ``k = f W_k`` and a value ``v = f W_v`` (1x1 convolutions). Regions come from kernels
    ``(k_h, k_w)`` up to ``(h_max, w_max)`` scanned at stride 1 (see :func:`region_boxes`).
    For a region of shape ``r_h x r_w``:

    * ``mu`` = mean of ``k`` (Eq. 6), ``sigma`` = its standard deviation (Eq. 7, computed
      as ``sqrt(E[k^2] - mu^2 + std_eps)`` so 1x1 regions stay differentiable),
    * ``p = [onehot(r_h) W_h, onehot(r_w) W_w]`` (Eq. 8, learned shape embedding),
    * region key ``g = ReLU([mu, sigma, p] W_o) W_d`` (Eq. 9), ``C``-dimensional,
    * region value ``V`` = sum of ``v`` over the region (Eq. 12).

    The query is ``Q = GAP(f)`` (Eq. 10) and the output
    ``softmax(Q g^T / sqrt(C)) V`` (Eq. 13) is the attended global vector for the classifier.

    ``forward`` returns the tuple ``(gap, regions, weights, attended)``: ``gap`` ``(B, C)``
    (the global-memory key of IEM's warm-up), ``regions`` ``(B, R, C)`` (the region keys
    ``g``, local-memory keys), ``weights`` ``(B, R)`` (the attention of Eq. 13, which
    ``IEMHead`` can use to keep the most attended regions) and ``attended``
    ``(B, out_channels)``, last so that a plain ``LinearClsHead`` also works on it.

    With ``attention=False`` (the paper's "w/o RSA" ablation, Table 5: RSA replaced by average
    pooling) ``attended = gap`` and the region features are plain region means of ``f``; the
    weights, used only to rank regions for a local memory that keeps a subset, are the
    parameter-free ``softmax(mean_r . gap / sqrt(C))``.

    Input: the backbone's last output. CNNs in ``TIMMBackbone`` give it with
    ``features_only=False`` (TIMMBackbone resets the classifier with ``global_pool=''``, so
    the timm model returns its final spatial map) or with ``features_only=True`` (the last
    of the returned maps is used; ``out_indices=(-1,)`` avoids computing the others' outputs
    twice). ViT-style token outputs ``(B, N, C)`` are reshaped to their square grid after
    dropping ``num_prefix_tokens`` leading tokens.

    Args:
        in_channels (int): channels ``C`` of the feature map.
        out_channels (int, optional): dimension of the values / attended vector.
            Defaults to ``in_channels``.
        key_channels (int, optional): dimension of the per-position keys ``k``. Defaults to
            ``in_channels``.
        hidden_channels (int, optional): width of ``W_o``. Defaults to ``in_channels``.
        h_max (int): largest region height. Defaults to 2.
        w_max (int): largest region width. Defaults to 2.
        shape_embed_dim (int): width of each shape embedding ``W_h``, ``W_w``. Defaults to 16.
        attention (bool): use RSA; False gives the average-pooling ablation. Defaults to True.
        std_eps (float): added under the square root of Eq. 7. Defaults to 1e-5.
        num_prefix_tokens (int, optional): class/register tokens in front of a token
            sequence; None finds the smallest count (0..8) that leaves a square grid.
        init_cfg (dict, optional): MMEngine initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: Optional[int] = None,
                 key_channels: Optional[int] = None,
                 hidden_channels: Optional[int] = None,
                 h_max: int = 2,
                 w_max: int = 2,
                 shape_embed_dim: int = 16,
                 attention: bool = True,
                 std_eps: float = 1e-5,
                 num_prefix_tokens: Optional[int] = None,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg)
        if h_max < 1 or w_max < 1:
            raise ValueError(f'RSANeck: h_max={h_max} and w_max={w_max} must be >= 1.')
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels or in_channels) if attention else self.in_channels
        self.key_channels = int(key_channels or in_channels)
        self.hidden_channels = int(hidden_channels or in_channels)
        self.h_max, self.w_max = int(h_max), int(w_max)
        self.attention = attention
        self.std_eps = float(std_eps)
        self.num_prefix_tokens = num_prefix_tokens
        self._pooling_cache: dict = {}
        if attention:
            self.key_proj = nn.Conv2d(self.in_channels, self.key_channels, 1)
            self.value_proj = nn.Conv2d(self.in_channels, self.out_channels, 1)
            self.embed_h = nn.Embedding(self.h_max, shape_embed_dim)       # one-hot(r_h) W_h
            self.embed_w = nn.Embedding(self.w_max, shape_embed_dim)       # one-hot(r_w) W_w
            self.encode_o = nn.Linear(2 * self.key_channels + 2 * shape_embed_dim,
                                      self.hidden_channels)                 # W_o
            self.encode_d = nn.Linear(self.hidden_channels, self.in_channels)  # W_d

    # ---------------------------------------------------------------- input
    def _to_map(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            if x.size(1) != self.in_channels:
                raise ValueError(
                    f'RSANeck: the feature map has {x.size(1)} channels but in_channels='
                    f'{self.in_channels}; set `neck.in_channels` to the backbone\'s last '
                    'channel count.')
            return x
        if x.dim() == 3:
            return self._tokens_to_map(x)
        raise ValueError(
            f'RSANeck needs the final spatial feature map (B, C, H, W) or ViT tokens '
            f'(B, N, C), got shape {tuple(x.shape)}. A pooled vector has no regions: use '
            'TIMMBackbone with a CNN (it resets the classifier with global_pool=\'\', so the '
            'model returns its last map) and no pooling neck before RSANeck.')

    def _tokens_to_map(self, x: torch.Tensor) -> torch.Tensor:
        num_tokens, channels = x.shape[1:]
        candidates = ([self.num_prefix_tokens] if self.num_prefix_tokens is not None
                      else range(0, 9))
        for prefix in candidates:
            side = math.isqrt(max(num_tokens - prefix, 0))
            if side > 0 and side * side == num_tokens - prefix:
                if channels != self.in_channels:
                    raise ValueError(f'RSANeck: tokens have {channels} channels but '
                                     f'in_channels={self.in_channels}.')
                grid = x[:, prefix:].transpose(1, 2)
                return grid.reshape(x.size(0), channels, side, side)
        raise ValueError(
            f'RSANeck: {num_tokens} tokens do not form a square grid after dropping '
            f'{list(candidates)} prefix tokens; set `num_prefix_tokens`.')

    # -------------------------------------------------------------- forward
    def num_regions(self, height: int, width: int) -> int:
        """Number of regions ``R`` of an ``H x W`` map."""
        return sum((height - kh + 1) * (width - kw + 1)
                   for kh, kw in region_kernels(height, width, self.h_max, self.w_max))

    def _pooling_matrix(self, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
        """``(R, H*W)`` matrix whose row ``r`` averages the positions of region ``r``."""
        key = (height, width, like.device, like.dtype)
        matrix = self._pooling_cache.get(key)
        if matrix is None:
            boxes = region_boxes(height, width, self.h_max, self.w_max)
            rows, cols, vals = [], [], []
            for r, (top, left, rh, rw) in enumerate(boxes.tolist()):   # once per map size
                for i in range(top, top + rh):
                    for j in range(left, left + rw):
                        rows.append(r)
                        cols.append(i * width + j)
                        vals.append(1.0 / (rh * rw))
            matrix = torch.zeros(len(boxes), height * width, dtype=like.dtype)
            matrix[rows, cols] = torch.tensor(vals, dtype=like.dtype)
            matrix = matrix.to(like.device)
            self._pooling_cache[key] = matrix
        return matrix

    def _region_means(self, x: torch.Tensor) -> torch.Tensor:
        """Means ``(B, R, C)`` of ``x`` over every region: one GEMM with the pooling matrix
        (no per-region or per-kernel work in the graph, one GEMM back in backward)."""
        matrix = self._pooling_matrix(x.size(2), x.size(3), x)
        return torch.matmul(matrix, x.flatten(2).transpose(1, 2))

    def forward(self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(gap (B, C), regions (B, R, C), weights (B, R), attended (B, out))``."""
        x = inputs[-1] if isinstance(inputs, (list, tuple)) else inputs
        x = self._to_map(x)
        height, width = x.shape[2:]
        kernels = region_kernels(height, width, self.h_max, self.w_max)
        gap = x.mean((2, 3))                                               # Eq. 10
        if not self.attention:
            regions = self._region_means(x)
            weights = (torch.einsum('brc,bc->br', regions, gap) /
                       math.sqrt(self.in_channels)).softmax(-1)
            return gap, regions, weights, gap

        keys = self.key_proj(x)
        values = self.value_proj(x)
        # one pooling GEMM for the region means of k, k^2 (Eq. 6-7) and v (Eq. 12)
        stats = self._region_means(torch.cat([keys, keys * keys, values], 1))
        mu, square, value_mean = stats.split(
            [self.key_channels, self.key_channels, self.out_channels], dim=2)
        sigma = torch.sqrt((square - mu * mu).clamp_min(0) + self.std_eps)  # Eq. 7
        device = x.device
        areas, r_h, r_w = [], [], []
        for kh, kw in kernels:
            count = (height - kh + 1) * (width - kw + 1)
            areas.append(torch.full((count, ), float(kh * kw), device=device))
            r_h.append(torch.full((count, ), kh - 1, dtype=torch.long, device=device))
            r_w.append(torch.full((count, ), kw - 1, dtype=torch.long, device=device))
        region_values = value_mean * torch.cat(areas).view(1, -1, 1)        # Eq. 12 (sum)
        shape = torch.cat([self.embed_h(torch.cat(r_h)), self.embed_w(torch.cat(r_w))], -1)
        # Eq. 9: [mu, sigma, p] W_o split by blocks; the shape term p W_o (R x hidden) is
        # shared by the batch, so it is added instead of concatenated per image.
        weight = self.encode_o.weight
        stat_part = F.linear(torch.cat([mu, sigma], -1), weight[:, :2 * self.key_channels])
        shape_part = F.linear(shape.to(weight.dtype), weight[:, 2 * self.key_channels:],
                              self.encode_o.bias)
        regions = self.encode_d(F.relu(stat_part + shape_part))           # Eq. 8-9
        logits = torch.einsum('brc,bc->br', regions, gap) / math.sqrt(self.in_channels)
        weights = logits.softmax(-1)
        attended = torch.einsum('br,brc->bc', weights, region_values)       # Eq. 13
        return gap, regions, weights, attended


__all__ = ['RSANeck', 'region_boxes', 'region_kernels']
