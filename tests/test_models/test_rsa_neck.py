"""RSANeck (IEM Eq. 6-13): region enumeration, brute-force encoding, timm backbones."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import TIMMBackbone

import lt_plugins  # noqa: F401  (registers resnet10, resnet32_cifar)
from lt_plugins.models.necks.rsa_neck import RSANeck, region_boxes


def test_region_enumeration_3x3_max_2x2_matches_figure_2():
    boxes = region_boxes(3, 3, 2, 2)
    assert boxes.shape == (25, 4)                       # 9 + 6 + 6 + 4
    shapes = [tuple(b[2:].tolist()) for b in boxes]
    assert [shapes.count(s) for s in [(1, 1), (1, 2), (2, 1), (2, 2)]] == [9, 6, 6, 4]
    # the four 2x2 windows of Figure 2, scanned at stride 1
    assert boxes[-4:].tolist() == [[0, 0, 2, 2], [0, 1, 2, 2], [1, 0, 2, 2], [1, 1, 2, 2]]
    assert len(set(map(tuple, boxes.tolist()))) == 25
    assert RSANeck(4).num_regions(3, 3) == 25
    # kernels larger than the map are clipped: a 2x5 map with h_max = w_max = 3
    assert region_boxes(2, 5, 3, 3).shape[0] == sum(
        (2 - kh + 1) * (5 - kw + 1) for kh in (1, 2) for kw in (1, 2, 3))


def _brute_force(neck, x):
    """Eq. 6-13 with explicit loops over the regions of ``region_boxes``."""
    keys, values = neck.key_proj(x), neck.value_proj(x)
    gap = x.mean((2, 3))
    boxes = region_boxes(x.size(2), x.size(3), neck.h_max, neck.w_max)
    regions, region_values = [], []
    for top, left, rh, rw in boxes.tolist():
        k = keys[:, :, top:top + rh, left:left + rw].flatten(2)        # (B, ck, area)
        mu = k.mean(-1)
        sigma = torch.sqrt(((k - mu.unsqueeze(-1)) ** 2).mean(-1) + neck.std_eps)
        onehot_h = F.one_hot(torch.tensor(rh - 1), neck.h_max).to(x.dtype)
        onehot_w = F.one_hot(torch.tensor(rw - 1), neck.w_max).to(x.dtype)
        p = torch.cat([onehot_h @ neck.embed_h.weight, onehot_w @ neck.embed_w.weight])
        p = p.expand(x.size(0), -1)
        g = neck.encode_d(torch.relu(neck.encode_o(torch.cat([mu, sigma, p], 1))))
        regions.append(g)
        region_values.append(values[:, :, top:top + rh, left:left + rw].sum((2, 3)))
    regions = torch.stack(regions, 1)
    region_values = torch.stack(region_values, 1)
    attn = torch.softmax((regions @ gap.unsqueeze(-1)).squeeze(-1) / math.sqrt(x.size(1)), 1)
    attended = (attn.unsqueeze(-1) * region_values).sum(1)
    return gap, regions, attn, attended


@pytest.mark.parametrize('size,h_max,w_max', [((3, 3), 2, 2), ((4, 5), 3, 2), ((2, 2), 4, 4)])
def test_encoding_matches_brute_force(size, h_max, w_max):
    torch.manual_seed(0)
    neck = RSANeck(6, out_channels=5, key_channels=4, hidden_channels=7, h_max=h_max,
                   w_max=w_max, shape_embed_dim=3).double()
    x = torch.randn(2, 6, *size, dtype=torch.float64)
    out = neck((x, ))
    ref = _brute_force(neck, x)
    for got, want in zip(out, ref):
        torch.testing.assert_close(got, want)
    assert out[1].shape == (2, neck.num_regions(*size), 6) and out[3].shape == (2, 5)


def test_gradients_reach_every_parameter_and_are_finite():
    torch.manual_seed(0)
    neck = RSANeck(8)
    x = torch.randn(2, 8, 3, 3, requires_grad=True)
    gap, regions, _, attended = neck(x)
    (attended.sum() + regions.pow(2).sum()).backward()
    for name, param in neck.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    assert torch.isfinite(x.grad).all()


def test_without_attention_is_average_pooling():
    x = torch.randn(2, 4, 3, 3)
    gap, regions, weights, attended = RSANeck(4, attention=False)(x)
    torch.testing.assert_close(attended, x.mean((2, 3)))
    torch.testing.assert_close(weights, torch.softmax(
        torch.einsum('brc,bc->br', regions, gap) / 2.0, 1))     # sqrt(C) = 2
    torch.testing.assert_close(gap, attended)
    boxes = region_boxes(3, 3)
    for i, (top, left, rh, rw) in enumerate(boxes.tolist()):
        window = x[:, :, top:top + rh, left:left + rw]
        torch.testing.assert_close(regions[:, i], window.mean((2, 3)))


def test_clear_errors():
    neck = RSANeck(4)
    with pytest.raises(ValueError, match='spatial feature map'):
        neck(torch.randn(2, 4))
    with pytest.raises(ValueError, match='in_channels=4'):
        neck(torch.randn(2, 5, 3, 3))
    with pytest.raises(ValueError, match='square grid'):
        RSANeck(4, num_prefix_tokens=0)(torch.randn(2, 17, 4))


@pytest.mark.parametrize('model_name,kwargs,size,channels,grid', [
    ('resnet32_cifar', {}, 32, 64, 8),
    ('resnet10', {}, 64, 512, 2),
    ('resnet18', {}, 64, 512, 2),
    ('convnext_atto', {}, 64, 320, 2),
    ('mobilenetv3_small_050', {}, 64, 1024, 2),
    ('resnet10', dict(features_only=True, out_indices=(-1, )), 64, 512, 2),
    ('vit_tiny_patch16_224', dict(img_size=32, patch_size=8), 32, 192, 4),
])
def test_shapes_on_timm_backbones(model_name, kwargs, size, channels, grid):
    torch.manual_seed(0)
    backbone = TIMMBackbone(model_name=model_name, **kwargs)
    neck = RSANeck(channels)
    with torch.no_grad():
        gap, regions, weights, attended = neck(backbone(torch.randn(2, 3, size, size)))
    regions_expected = region_boxes(grid, grid).shape[0]
    assert gap.shape == (2, channels) and attended.shape == (2, channels)
    assert regions.shape == (2, regions_expected, channels)
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    assert torch.isfinite(attended).all()
