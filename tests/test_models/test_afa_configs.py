"""configs/afa: every config parses; CPU configs train a step; the cRT stage loads stage 1."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'afa', '*.py')))
CPU = 'afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py'


def _load(name):
    path = name if osp.isabs(name) else osp.join(ROOT, 'configs', 'afa', name)
    if 'imagenet' in path and not osp.exists(
            osp.join(ROOT, 'configs', '_base_', 'datasets', 'imagenet_lt.py')):
        pytest.skip('configs/_base_/datasets/imagenet_lt.py is not there yet')
    return Config.fromfile(path)


def _samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_parses(path):
    cfg = _load(path)
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert 'ClassCountsHook' in hooks
    is_crt = osp.basename(path).startswith('afa-crt_')
    assert cfg.model.type == ('DecoupledLabelAwareClassifier' if is_crt
                              else 'LabelAwareClassifier')
    if is_crt:
        assert 'LBLSHook' not in hooks and cfg.model.head.type == 'LinearClsHead'
        assert cfg.train_cfg.max_epochs == 10
        assert cfg.train_dataloader.sampler.type == 'ClassBalancedSampler'
    elif any(tag in path for tag in ('-nogen', '-nolbls', '-screen15-ce')):
        assert 'LBLSHook' not in hooks
    elif '-screen15' in path:  # issue-19 screens: 15 epochs, t = 5
        lbls = [h for h in cfg.custom_hooks if h['type'] == 'LBLSHook'][0]
        assert (lbls['start'], lbls['weight']) == (5, 2.0)
        assert cfg.train_cfg.max_epochs == 15
    else:
        lbls = [h for h in cfg.custom_hooks if h['type'] == 'LBLSHook'][0]
        assert (lbls['start'], lbls['weight']) == ((10, 2.0) if '-cpu' in path else (30, 2.0))
        assert cfg.train_cfg.max_epochs == (30 if '-cpu' in path else 90)


@pytest.mark.parametrize('name,shape', [
    (CPU, (3, 32, 32)),
    ('afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu.py', (1, 28, 28)),
])
def test_cpu_config_trains_a_step(name, shape):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(_load(name).model)
    model.train()
    losses = model(torch.randn(8, *shape), _samples([0, 0, 0, 0, 1, 1, 2, 9]), mode='loss')
    assert losses['afa_num_gen'].item() > 0
    model.parse_losses(losses)[0].backward()


def test_ablation_switches():
    nogen = _load('afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-nogen.py').model
    assert nogen.neck.generate is False and nogen.head.all_loss_weight == 0
    noadd = _load('afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-noattadd.py')
    assert noadd.model.neck.attention_addition is False
    assert noadd.model_wrapper_cfg.find_unused_parameters


def test_crt_stage_loads_stage1_and_trains_only_the_classifier():
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    stage1 = MODELS.build(_load(CPU).model)
    crt = MODELS.build(_load('afa-crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py').model)
    result = crt.load_state_dict(stage1.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ['head.fc.bias', 'head.fc.weight']
    assert [n for n, p in crt.named_parameters() if p.requires_grad] == [
        'head.fc.weight', 'head.fc.bias']
    crt.train()
    assert not crt.backbone.training and not crt.neck.training
    x = torch.randn(6, 3, 32, 32)
    stage1.eval()
    torch.testing.assert_close(crt.extract_feat(x), stage1.extract_feat(x))
    losses = crt(x, _samples([0, 1, 2, 3, 4, 5]), mode='loss')
    assert losses['afa_num_gen'].item() == 0  # frozen neck: enhanced features only
    crt.parse_losses(losses)[0].backward()
