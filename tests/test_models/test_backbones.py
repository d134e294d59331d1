"""The timm-registered LDAM CIFAR ResNet-32 and its use through MMPretrain's TIMMBackbone."""
import pytest
import timm
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

import lt_plugins  # noqa: F401  (registers resnet32_cifar in timm)


def _resnet32_param_count_by_hand(num_classes: int = 10) -> int:
    conv = lambda cin, cout: cin * cout * 9  # noqa: E731  (3x3, no bias)
    bn = lambda c: 2 * c  # noqa: E731
    total = conv(3, 16) + bn(16)
    cin = 16
    for width in (16, 32, 64):
        for _ in range(5):  # option-A shortcuts have no parameters
            total += conv(cin, width) + bn(width) + conv(width, width) + bn(width)
            cin = width
    return total + 64 * num_classes + num_classes


def test_resnet32_cifar_parameters_and_shapes():
    torch.manual_seed(0)
    model = timm.create_model('resnet32_cifar')
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == _resnet32_param_count_by_hand() == 464154
    blocks = [m for m in model.modules() if type(m).__name__ == 'CifarBasicBlock']
    assert len(blocks) == 15
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 31  # + the fc layer: 32 weighted layers
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    assert model(x).shape == (2, 10)
    assert model.forward_features(x).shape == (2, 64, 8, 8)
    assert timm.create_model('resnet32_cifar', num_classes=100)(x).shape == (2, 100)
    # 'resnet32_cifar' is listed by timm like any other model
    assert 'resnet32_cifar' in timm.list_models('resnet*_cifar')


def test_zero_pad_shortcut_is_ldam_option_a():
    model = timm.create_model('resnet32_cifar')
    shortcut = model.layer2[0].downsample
    x = torch.randn(2, 16, 32, 32)
    planes = 32  # LDAM: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
    ref = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
    torch.testing.assert_close(shortcut(x), ref)
    assert sum(p.numel() for p in shortcut.parameters()) == 0


def test_features_only_channels_reductions_and_values():
    torch.manual_seed(0)
    full = timm.create_model('resnet32_cifar').eval()
    feats = timm.create_model('resnet32_cifar', features_only=True).eval()
    assert feats.feature_info.channels() == [16, 16, 32, 64]
    assert feats.feature_info.reduction() == [1, 1, 2, 4]
    missing, unexpected = feats.load_state_dict(full.state_dict(), strict=False)
    assert not missing and set(unexpected) == {'fc.weight', 'fc.bias'}
    x = torch.randn(2, 3, 32, 32)
    outs = feats(x)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 32, 32), (2, 16, 32, 32),
                                             (2, 32, 16, 16), (2, 64, 8, 8)]
    with torch.no_grad():
        stem = full.act1(full.bn1(full.conv1(x)))
        l1 = full.layer1(stem)
        l2 = full.layer2(l1)
        torch.testing.assert_close(outs[0], stem)
        torch.testing.assert_close(outs[1], l1)
        torch.testing.assert_close(outs[2], l2)
        torch.testing.assert_close(outs[3], full.forward_features(x))


def test_timm_backbone_wrapper():
    torch.manual_seed(0)
    backbone = MODELS.build(dict(type='TIMMBackbone', model_name='resnet32_cifar'))
    out = backbone(torch.randn(2, 3, 32, 32))
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (2, 64, 8, 8)  # classifier removed, no pooling
    assert sum(p.numel() for p in backbone.parameters()) == 464154 - 650

    grey = MODELS.build(dict(type='TIMMBackbone', model_name='resnet32_cifar', in_channels=1))
    assert grey(torch.randn(2, 1, 8, 8))[0].shape == (2, 64, 2, 2)

    pyramid = MODELS.build(dict(type='TIMMBackbone', model_name='resnet32_cifar',
                                features_only=True))
    outs = pyramid(torch.randn(1, 3, 32, 32))
    assert [o.shape[1:] for o in outs] == [(16, 32, 32), (16, 32, 32), (32, 16, 16),
                                          (64, 8, 8)]


def test_local_weight_file(tmp_path):
    torch.manual_seed(1)
    source = timm.create_model('resnet32_cifar')
    path = tmp_path / 'resnet32_cifar.pth'
    torch.save(source.state_dict(), path)
    backbone = MODELS.build(dict(type='TIMMBackbone', model_name='resnet32_cifar',
                                 checkpoint_path=str(path)))
    torch.testing.assert_close(backbone.timm_model.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(backbone.timm_model.layer3[4].bn2.running_var,
                               source.layer3[4].bn2.running_var)


def test_pretrained_raises_clear_error():
    with pytest.raises(RuntimeError, match='no published pretrained weights') as err:
        timm.create_model('resnet32_cifar', pretrained=True)
    assert 'checkpoint_path' in str(err.value)
    with pytest.raises(RuntimeError, match='pretrained=False'):
        MODELS.build(dict(type='TIMMBackbone', model_name='resnet32_cifar', pretrained=True))
