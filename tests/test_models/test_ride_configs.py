"""RIDE / LDAM-DRW / MBJ + RIDE configs build and train a step with other timm backbones, changed
by `model_name` alone."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from mmpretrain.utils import register_all_modules

import lt_plugins  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module', autouse=True)
def registered():
    register_all_modules(init_default_scope=True)


def _build(path, model_name=None):
    cfg = Config.fromfile(osp.join(REPO, path))
    if model_name is not None:
        cfg.model.backbone.model_name = model_name
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    num_classes = cfg.model.head.num_classes
    counts = torch.arange(num_classes, 0, -1) * 3
    for module in model.modules():
        if hasattr(module, 'set_class_counts'):
            module.set_class_counts(counts)
    return cfg, model, num_classes


@pytest.mark.parametrize('path', [
    'configs/ride/mbj-ride_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
    'configs/ride/mbj-ride_resnext50_8xb32_imagenet-lt.py',
    'configs/baselines/ldam-drw_resnet32-cifar_1xb128_cifar100-lt-ir100.py',
])
@pytest.mark.parametrize('model_name', ['resnet18', 'convnext_atto'])
def test_config_builds_and_steps_with_other_timm_backbones(path, model_name):
    cfg, model, num_classes = _build(path, model_name)
    for module in model.modules():
        if hasattr(module, 'set_memory_enabled'):
            module.set_memory_enabled(True)
        if hasattr(module, 'set_drw_enabled'):
            module.set_drw_enabled(True)
    samples = [DataSample().set_gt_label(i % num_classes) for i in range(4)]
    losses = model(torch.randn(4, 3, 32, 32), samples, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    if cfg.model.type == 'RIDEClassifier':
        assert model.backbone.model_name == model_name
        assert set(losses) >= {'loss_cls', 'loss_diversity', 'loss_memory'}
        assert len(model.backbone.experts) == model.head.num_experts == 4
        expected = dict(resnet18=384, convnext_atto=240)[model_name]  # 0.75 width experts
        if cfg.model.backbone.width_factor == 1.0:
            expected = dict(resnet18=512, convnext_atto=320)[model_name]
        assert model.head.in_channels == expected


def test_router_stage_config_trains_only_the_router():
    cfg, model, _ = _build('configs/ride/ride-ea_resnet32-cifar_1xb128_cifar100-lt-ir100.py')
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all('router' in n for n in trainable)
    assert cfg.train_dataloader.sampler.type == 'ClassBalancedSampler'
    assert model.head.top_choices == 30 and model.head.pos_weight == 100.0
    model.eval()
    out = model(torch.randn(3, 3, 32, 32), [DataSample() for _ in range(3)], mode='predict')
    assert all(1 <= int(o.num_experts) <= 4 for o in out)


def test_ride_cifar_config_matches_ride_hyper_parameters():
    cfg = Config.fromfile(osp.join(REPO,
                                   'configs/ride/ride_resnet32-cifar_1xb128_cifar100-lt-ir100.py'))
    head, backbone = cfg.model.head, cfg.model.backbone
    assert backbone.num_experts == head.num_experts == 4 and backbone.tail_stages == 2
    assert backbone.width_factor == 0.75 and head.scale == 30.0
    assert head.loss.max_margin == 0.5 and head.diversity.loss_weight == -0.2
    assert head.diversity.reweight_factor == 0.05
    assert [h for h in cfg.custom_hooks if h.type == 'DRWHook'][0].start_epoch == 160
    assert cfg.train_cfg.max_epochs == 200 and cfg.optim_wrapper.optimizer.weight_decay == 5e-4
