"""The README's "own MMPretrain config" snippet, run verbatim with only the data root changed."""
import os.path as osp
import re

import numpy as np
import pytest

from tests.test_datasets.test_long_tailed import write_cifar10

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def readme_config_snippet() -> str:
    readme = open(osp.join(REPO, 'README.md')).read()
    blocks = re.findall(r'```python\n(.*?)```', readme, flags=re.S)
    snippet = next((b for b in blocks if "custom_imports" in b and 'mmpretrain::' in b), None)
    assert snippet is not None, 'README lost its MMPretrain config example'
    return snippet


def test_readme_config_trains_with_mmpretrain_bases(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 60)  # 60 images per class; the profile keeps <= 50
    rng.shuffle(labels)
    data = rng.integers(0, 256, size=(600, 3072), dtype=np.uint8)
    names = np.array([f'img_{i}.png' for i in range(600)])
    root = tmp_path / 'data' / 'cifar10' / 'cifar-10-batches-py'  # MMPretrain's CIFAR layout
    write_cifar10(str(root), data, labels, names, data[:100], labels[:100], names[:100])

    # The snippet as printed, plus what a copy of the data needs, and a short run.
    config = tmp_path / 'my_config.py'
    config.write_text(readme_config_snippet() + f"""
for loader in (train_dataloader, val_dataloader, test_dataloader):
    loader['dataset'].update(data_root='{tmp_path}/data/cifar10', verify_md5=False, n_max=50,
                             val_per_class=5)
train_dataloader['batch_size'] = 32
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=5))
""")
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(config))
    assert cfg.default_scope == 'mmpretrain' and 'lt_plugins' in cfg.custom_imports.imports
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    train_set = runner.train_dataloader.dataset
    assert type(train_set).__name__ == 'CIFAR10LT'
    assert train_set.class_counts.tolist() == [int(50 * 100 ** (-i / 9)) for i in range(10)]
    assert type(runner.train_dataloader.sampler).__name__ == 'ClassBalancedSampler'
    metrics = runner.test()
    # n_max = 50: no class has > 100 training images, so the many-shot split is absent.
    assert set(metrics) >= {'shot/top1', 'shot/medium', 'shot/few'}
    assert 'shot/many' not in metrics
    assert 0 <= metrics['shot/top1'] <= 100
