"""Every STG config parses, builds its model, and chains to its predecessor's checkpoint."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config
from mmpretrain.registry import MODELS

import lt_plugins  # noqa: F401

ROOT = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'stg')
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'stg-stage*.py')))
# the CPU-schedule chains run in the default suite, the rest (same generator) with -m slow
PARAMS = [pytest.param(p, marks=() if '-cpu' in p else pytest.mark.slow) for p in CONFIGS]


def test_configs_exist_for_every_dataset():
    names = {osp.basename(p) for p in CONFIGS}
    for key in ('cifar10-lt-ir10', 'cifar10-lt-ir50', 'cifar10-lt-ir100', 'cifar100-lt-ir10',
                'cifar100-lt-ir50', 'cifar100-lt-ir100', 'cifar10-lt-ir100-cpu',
                'fashion-mnist-lt-ir100-cpu'):
        for stage in (1, 2, 3):
            assert f'stg-stage{stage}_resnet32-cifar_1xb128_{key}.py' in names
    for tag in ('resnet50_4xb128_imagenet-lt', 'resnet152_4xb64_places-lt'):
        for stage in (1, 2, 3):
            assert f'stg-stage{stage}_{tag}.py' in names


@pytest.mark.parametrize('path', PARAMS, ids=osp.basename)
def test_config_builds_and_chains(path):
    cfg = Config.fromfile(path)
    name = osp.basename(path)
    stage = int(re.match(r'stg-stage(\d)', name).group(1))
    head = cfg.model.head
    if stage == 1:
        assert cfg.model.train_cfg.augments.type == 'Mixup'
    else:
        assert cfg.model.type == 'FeatureCacheClassifier' and cfg.model.train_cfg is None
        # load_from names the previous stage's work dir and its last epoch
        # (stage 2 of the -ce- chain starts from the plain CE model of configs/baselines)
        prev_dir = osp.basename(osp.dirname(cfg.load_from))
        if stage == 2 and '-ce-' in name:
            assert prev_dir.startswith('ce_')
            prev_cfg = Config.fromfile(osp.join(ROOT, '..', 'baselines', prev_dir + '.py'))
            assert prev_cfg.model.head.type == 'LinearClsHead'
        else:
            prev_cfg = Config.fromfile(osp.join(ROOT, prev_dir + '.py'))
            assert prev_dir.startswith(f'stg-stage{stage - 1}_')
        assert cfg.load_from.endswith(f'epoch_{prev_cfg.train_cfg.max_epochs}.pth')
        assert head.type == ('STGGeneratorHead' if stage == 2 else 'STGClsHead')
        if stage == 3:
            assert cfg.train_dataloader.sampler.type == 'ClassBalancedSampler'
            assert head.head_threshold == prev_cfg.model.head.head_threshold
    if 'resnet32' in name:  # large backbones: parsing is enough for the default suite
        MODELS.build(cfg.model)
