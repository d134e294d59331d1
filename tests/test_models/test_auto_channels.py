"""in_channels='auto': a timm backbone swap is a `model_name` change only."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

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
    ('convnext_atto', False), ('regnetx_002', True),
    # MobileNetV3's conv_head runs after timm's (removed) pooling: num_features is 288, the
    # backbone returns 1024 channels
    ('mobilenetv3_small_050', False), ('mobilenetv3_small_050', True),
    ('efficientnet_b0', False)])
def test_backbone_channels_match_a_forward(model_name, features_only):
    backbone = MODELS.build(dict(type='TIMMBackbone', model_name=model_name,
                                 features_only=features_only))
    backbone.eval()
    assert backbone_channels(backbone) == _last_map_channels(backbone)


def test_mobilenetv3_classifier_trains_with_auto_channels():
    model = MODELS.build(dict(
        type='AutoChannelClassifier',
        backbone=dict(type='TIMMBackbone', model_name='mobilenetv3_small_050'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels='auto')))
    assert model.head.fc.in_features == 1024
    samples = [DataSample().set_gt_label(i % 3) for i in range(4)]
    model(torch.randn(4, 3, 32, 32), samples, mode='loss')['loss'].backward()


def test_vit_tokens_are_a_clear_error_and_its_maps_work():
    vit = dict(type='TIMMBackbone', model_name='vit_tiny_patch16_224', img_size=32)
    cfg = dict(type='AutoChannelClassifier', neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=3, in_channels='auto'))
    with pytest.raises(ValueError, match=r'token sequence.*set features_only=True'):
        MODELS.build(dict(cfg, backbone=vit))
    model = MODELS.build(dict(cfg, backbone=dict(vit, features_only=True)))
    assert model.head.fc.in_features == 192


def test_dry_forward_keeps_the_backbone_state():
    backbone = MODELS.build(dict(type='TIMMBackbone', model_name='mobilenetv3_small_050'))
    backbone.train()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    assert backbone_channels(backbone) == 1024
    assert backbone.training
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm running stats untouched


def test_unknown_timm_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"'mobilenetv3_small50' is not a timm model.*"
                                         'mobilenetv3_small_050'):
        MODELS.build(dict(
            type='AutoChannelClassifier',
            backbone=dict(type='TIMMBackbone', model_name='mobilenetv3_small50'),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=512)))


def test_afa_feat_size_from_input_size_and_checkpoint_keys_unchanged():
    def build(model_name, **neck):
        return MODELS.build(dict(
            type='LabelAwareClassifier',
            backbone=dict(type='TimmSplitBackbone', model_name=model_name),
            neck=dict(type='AFANeck', in_channels='auto', **neck),
            head=dict(type='AFAClsHead', num_classes=3, in_channels='auto')))

    torch.manual_seed(0)
    auto = build('resnet32_cifar', input_size=(32, 32))
    assert auto.neck.feat_size == (16, 16) and auto.neck.qkv.in_features == 256
    explicit = build('resnet32_cifar', feat_size=(16, 16))
    explicit.load_state_dict(auto.state_dict())  # strict: same keys and shapes
    for name, size, feat in [('mobilenetv3_small_050', (64, 64), (4, 4)),
                             ('efficientnet_b0', (32, 32), (2, 2))]:
        model = build(name, input_size=size)
        assert model.neck.feat_size == feat
        samples = [DataSample().set_gt_label(i % 3) for i in range(4)]
        losses = model(torch.randn(4, 3, *size), samples, mode='loss')
        assert losses['afa_num_gen'].item() > 0
        model.parse_losses(losses)[0].backward()


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


# shipped CPU configs, with only the backbone name changed (AFA's linear Q/K/V is sized from
# the configured input size by a dry forward of the new trunk)
SWAPS = [
    ('configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', {}),
    ('configs/mbj/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', {}),
    ('configs/iem/iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', {}),
    ('configs/stg/stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', {}),
    ('configs/afa/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', {}),
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


def test_a_training_batch_of_one_at_batchnorm_names_drop_last():
    from mmengine.optim import build_optim_wrapper
    model = MODELS.build(dict(
        type='AutoChannelClassifier',
        backbone=dict(type='TIMMBackbone', model_name='mobilenetv3_small_050'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels='auto')))
    model.train()
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.1)))
    one = dict(inputs=torch.randn(1, 3, 32, 32), data_samples=[DataSample().set_gt_label(0)])
    with pytest.raises(ValueError, match=r'batch of 1 image.*BatchNorm.*'
                                         r'train_dataloader\.drop_last=True'):
        model.train_step(one, optim)
    two = dict(inputs=torch.randn(2, 3, 32, 32),
               data_samples=[DataSample().set_gt_label(i) for i in (0, 1)])
    assert torch.isfinite(model.train_step(two, optim)['loss'])
    model.eval()  # inference on one image is fine
    assert model(one['inputs'], mode='predict')[0].pred_score.shape == (3, )
