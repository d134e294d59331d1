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
