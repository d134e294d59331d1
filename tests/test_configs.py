"""Every shipped config parses and names only registered components."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

import lt_plugins  # noqa: F401
from mmpretrain import registry
from mmpretrain.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p.split(osp.sep))
REGISTRIES = [getattr(registry, name) for name in dir(registry)
              if name.isupper() and hasattr(getattr(registry, name), 'get')]


def named_types(node):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield node['type']
        for value in node.values():
            yield from named_types(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from named_types(value)


@pytest.fixture(scope='module', autouse=True)
def registered():
    register_all_modules(init_default_scope=True)


def test_configs_exist():
    assert len(CONFIGS) > 100


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_config_parses_and_types_resolve(path):
    cfg = Config.fromfile(path)
    unknown = sorted({t for t in named_types(cfg.to_dict())
                      if not any(reg.get(t) is not None for reg in REGISTRIES)})
    assert not unknown, f'{osp.relpath(path, REPO)} names unregistered types {unknown}'


def test_no_digits_lt_config_ends_an_epoch_with_a_batch_of_one():
    """DigitsLT has 481 training images: a batch size with 481 % b == 1 leaves one image in
    the last batch, which BatchNorm cannot normalise on backbones whose last map is 1x1."""
    from mmpretrain.registry import DATASETS
    checked, size = 0, None
    # configs on DigitsLT name it, or a digits config, in their text (_base_ or dataset type)
    for path in (p for p in CONFIGS if 'digits' in open(p).read().lower()):
        loader = Config.fromfile(path).get('train_dataloader')
        if not loader or loader.dataset.get('type') != 'DigitsLT':
            continue
        if size is None:
            size = len(DATASETS.build(dict(type='DigitsLT', split='train')))
        checked += 1
        batch = loader.batch_size
        assert loader.get('drop_last', False) or size % batch != 1, (
            f'{osp.relpath(path, REPO)}: {size} % {batch} == 1 without drop_last=True')
    assert checked >= 4 and size == 481
