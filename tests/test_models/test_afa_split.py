"""TimmSplitBackbone: trunk + tail reproduce the unsplit timm network bit for bit."""
import re

import pytest
import timm
import torch

import lt_plugins  # noqa: F401  (registers resnet32_cifar in timm)
from lt_plugins.models.backbones import TimmSplitBackbone

CASES = [
    # name, input size, trunk end, tail
    ('resnet18', 64, 'layer3', ('layer4', )),
    ('resnext50_32x4d', 32, 'layer3', ('layer4', )),
    ('resnext26ts', 64, 'stages_2', ('stages_3', 'final_conv')),
    ('convnext_atto', 64, 'stages_2', ('stages_3', )),
    ('regnetx_002', 64, 's3', ('s4', )),
    ('resnet32_cifar', 32, 'layer2', ('layer3', )),
]


@pytest.mark.parametrize('name,size,trunk_end,tail', CASES)
def test_split_is_bit_exact(name, size, trunk_end, tail):
    torch.manual_seed(0)
    split = TimmSplitBackbone(name)
    full = timm.create_model(name, features_only=True)
    full.load_state_dict({k.split('.', 1)[1]: v for k, v in split.state_dict().items()})
    assert split.trunk_module_names[-1] == trunk_end
    assert split.tail_module_names == tail
    x = torch.randn(2, 3, size, size)
    for train in (False, True):
        split.train(train)
        full.train(train)
        with torch.no_grad():
            ref = full(x)
            trunk = split.forward_trunk(x)
            out = split.forward_tail(trunk)
        assert torch.equal(trunk, ref[-2])
        assert torch.equal(out, ref[-1])
        assert torch.equal(split(x)[0], out) if not train else True
    assert trunk.shape[1] == split.trunk_channels and out.shape[1] == split.out_channels
    assert split.trunk_feat_size((size, size)) == tuple(trunk.shape[-2:])


def test_resnext50_names():
    """The paper's backbone: AFA after stage 3 (1024 channels, 1/16 resolution)."""
    split = TimmSplitBackbone('resnext50_32x4d')
    assert split.trunk_module_names[-1] == 'layer3' and split.tail_module_names == ('layer4', )
    assert (split.trunk_channels, split.trunk_reduction, split.out_channels) == (1024, 16, 2048)
    assert split.trunk_feat_size((224, 224)) == (14, 14)


# EfficientNet / MobileNet: timm's own features_only class is not a FeatureListNet; the
# split rebuilds one from the model's feature_info stage indices (blocks.<i> -> blocks_<i>)
FLAT_CASES = [
    # name, trunk end, tail, trunk channels, output channels
    ('efficientnet_b0', 'blocks_4', ('blocks_5', 'blocks_6'), 112, 320),
    ('mobilenetv3_small_050', 'blocks_3', ('blocks_4', 'blocks_5'), 24, 288),
]


@pytest.mark.parametrize('name,trunk_end,tail,trunk_chs,out_chs', FLAT_CASES)
def test_efficientnet_family_splits_before_the_last_stage(name, trunk_end, tail, trunk_chs,
                                                          out_chs):
    torch.manual_seed(0)
    split = TimmSplitBackbone(name)
    ref = timm.create_model(name, features_only=True)  # timm's EfficientNetFeatures & co.
    ref.load_state_dict({re.sub(r'^(trunk|tail)\.blocks_(\d+)', r'blocks.\2',
                                re.sub(r'^(trunk|tail)\.(?!blocks_)', '', k)): v
                         for k, v in split.state_dict().items()})
    assert split.trunk_module_names[-1] == trunk_end and split.tail_module_names == tail
    assert (split.trunk_channels, split.out_channels) == (trunk_chs, out_chs)
    x = torch.randn(2, 3, 64, 64)
    split.eval(), ref.eval()
    with torch.no_grad():
        levels = ref(x)
        trunk = split.forward_trunk(x)
        assert torch.equal(trunk, levels[-2])
        assert torch.equal(split.forward_tail(trunk), levels[-1])


def test_densenet_splits_before_its_last_dense_block():
    split = TimmSplitBackbone('densenet121')
    assert split.trunk_module_names[-1] == 'features_denseblock3'
    assert split.tail_module_names == ('features_transition3', 'features_denseblock4',
                                       'features_norm5')
    assert (split.trunk_channels, split.out_channels) == (1024, 1024)


@pytest.mark.parametrize('name,why', [
    ('vit_tiny_patch16_224', 'token sequence'),
    ('swin_tiny_patch4_window7_224', 'NHWC'),
])
def test_unsupported_model_named_in_error(name, why):
    with pytest.raises(ValueError, match=f"timm model '{name}' cannot be split.*{why}.*"
                                         "placement='after_last_stage'"):
        TimmSplitBackbone(name)


def test_unknown_model_name_lists_close_matches():
    with pytest.raises(ValueError, match="'efficentnet_b0' is not a timm model.*"
                                         'Did you mean.*efficientnet_b0'):
        TimmSplitBackbone('efficentnet_b0')


def test_bad_arguments():
    with pytest.raises(ValueError, match='tail_stages must be >= 1'):
        TimmSplitBackbone('resnet18', tail_stages=0)
    with pytest.raises(ValueError, match='out_indices'):
        TimmSplitBackbone('resnet18', out_indices=(1, 2))
    with pytest.raises(ValueError, match='fewer than'):
        TimmSplitBackbone('resnet32_cifar', tail_stages=5)


def test_cifar_stem_option():
    """cifar_stem=True: 3x3 stride-1 conv1, no max-pool: 8x8 maps after ResNeXt-50's third
    stage on 32x32 images instead of 2x2 (issue 19)."""
    import torch.nn as nn
    default = TimmSplitBackbone('resnext50_32x4d')
    assert default.trunk_feat_size((32, 32)) == (2, 2)
    split = TimmSplitBackbone('resnext50_32x4d', cifar_stem=True)
    conv1 = split.trunk.conv1
    assert (conv1.kernel_size, conv1.stride, conv1.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(split.trunk.maxpool, nn.Identity)
    assert split.trunk_module_names == default.trunk_module_names  # same cut, same order
    assert split.trunk_reduction == 4 and split.trunk_feat_size((32, 32)) == (8, 8)
    with torch.no_grad():
        assert split(torch.randn(2, 3, 32, 32))[0].shape == (2, 2048, 4, 4)
    with pytest.raises(ValueError, match='ResNet-style stem'):
        TimmSplitBackbone('efficientnet_b0', cifar_stem=True)
