"""in_channels='auto': a timm backbone swap is a `model_name` change only."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import lt_plugins  # noqa: F401
from lt_plugins.models.classifiers.auto_channels import (backbone_channels,
                                                         resolve_auto_channels)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(autouse=True)
def scope():
    init_default_scope('mmpretrain')


def _last_map_channels(backbone, size=64):
    with torch.no_grad():
        out = backbone(torch.zeros(1, 3, size, size))
    out = out[-1] if isinstance(out, (tuple, list)) else out
    return out.shape[1]


@pytest.mark.parametrize('model_name,features_only', [
    ('resnet32_cifar', False), ('resnet18', False), ('resnet18', True),
    ('convnext_atto', False), ('regnetx_002', True)])
def test_backbone_channels_match_a_forward(model_name, features_only):
    backbone = MODELS.build(dict(type='TIMMBackbone', model_name=model_name,
                                 features_only=features_only))
    backbone.eval()
    assert backbone_channels(backbone) == _last_map_channels(backbone)


def test_split_backbone_trunk_and_output_channels():
    backbone = MODELS.build(dict(type='TimmSplitBackbone', model_name='resnet18'))
    backbone.eval()
    assert backbone_channels(backbone) == _last_map_channels(backbone) == 512
    _, neck, _ = resolve_auto_channels(
        backbone, dict(type='AFANeck', in_channels='auto', qkv='conv1x1'), None)
    assert neck.in_channels == backbone.forward_trunk(torch.zeros(1, 3, 64, 64)).shape[1] == 256
    _, neck, _ = resolve_auto_channels(
        backbone, dict(type='AFANeck', in_channels='auto', qkv='conv1x1',
                       placement='after_last_stage'), None)
    assert neck.in_channels == 512


def test_without_auto_nothing_is_built_early():
    backbone = dict(type='TIMMBackbone', model_name='resnet18')
    neck, head = dict(type='GlobalAveragePooling'), dict(type='LinearClsHead', num_classes=3,
                                                         in_channels=512)
    assert resolve_auto_channels(backbone, neck, head) == (backbone, neck, head)


def test_head_follows_neck_out_channels_and_memories_follow_backbone():
    model = MODELS.build(dict(
        type='AutoChannelClassifier',
        backbone=dict(type='TIMMBackbone', model_name='resnet18'),
        neck=dict(type='RSANeck', in_channels='auto', out_channels=96),
        head=dict(type='IEMHead', num_classes=4, in_channels='auto', global_channels='auto',
                  global_capacity=3, local_capacity=3, num_neighbors=2)))
    assert model.neck.in_channels == 512
    assert model.head.in_channels == 96 and model.head.fc.in_features == 96
    assert model.head.global_channels == 512 and model.head.local_channels == 512
    assert model.head.global_memory.keys.shape[-1] == 512


def test_state_dict_equals_the_explicit_image_classifier():
    explicit = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='TIMMBackbone', model_name='resnet18'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=512)))
    auto = MODELS.build(dict(
        type='AutoChannelClassifier', backbone=dict(type='TIMMBackbone', model_name='resnet18'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=5, in_channels='auto')))
    ref = explicit.state_dict()
    assert {k: v.shape for k, v in auto.state_dict().items()} == {k: v.shape
                                                                 for k, v in ref.items()}
    auto.load_state_dict(ref)          # strict: same keys, same shapes
    x = torch.randn(2, 3, 32, 32)
    explicit.eval(), auto.eval()
    torch.testing.assert_close(auto(x, mode='tensor'), explicit(x, mode='tensor'))


# shipped CPU configs, with only the backbone name changed (AFA's linear Q/K/V is tied to
# the trunk's map size, so that config also switches to its size-free 1x1 Q/K/V)
SWAPS = [
    ('configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', {}),
    ('configs/mbj/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', {}),
    ('configs/iem/iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', {}),
    ('configs/stg/stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', {}),
    ('configs/afa/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
     {'model.neck.qkv': 'conv1x1'}),
]


@pytest.mark.parametrize('path,extra', SWAPS, ids=[osp.basename(p) for p, _ in SWAPS])
def test_shipped_config_takes_another_timm_backbone_by_name(path, extra):
    cfg = Config.fromfile(osp.join(REPO, path))
    cfg.merge_from_dict({'model.backbone.model_name': 'resnet18', **extra})
    model_cfg = cfg.model.to_dict()
    model_cfg.pop('predecessor', None)        # STG stage marker (names the stage-1 config)
    model = MODELS.build(model_cfg)
    fc = getattr(model.head, 'fc', None)
    assert fc is not None and fc.in_features == 512
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32), mode='predict')
    assert len(out) == 2 and out[0].pred_score.shape == (10, )


def test_backbone_without_channel_information_is_a_clear_error():
    with pytest.raises(ValueError, match="in_channels='auto'.*by hand"):
        MODELS.build(dict(
            type='AutoChannelClassifier', backbone=dict(type='ResNet', depth=18),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=5, in_channels='auto')))
