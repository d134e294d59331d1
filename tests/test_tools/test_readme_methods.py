"""The README's per-method configs (MBJ, IEM + RSA, STG, AFA + LBLS), each written to a file
as printed and trained for one short epoch on a tiny CIFAR-10 copy, chained as the README's
commands chain them (``load_from`` of each stage pointed at the run before)."""
import os.path as osp
import re

import numpy as np
import pytest
import torch

from tests.test_datasets.test_long_tailed import write_cifar10
from tests.test_tools.test_readme_config import readme_config_snippet

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# IR 10 from 30 images (30, 23, 17, 13, 10, 8, 6, 5, 3, 3): no empty class at this size.
COUNTS = [int(30 * 10 ** (-i / 9)) for i in range(10)]


def readme_named_snippets() -> dict:
    """``{file name: text}`` of the README's python blocks whose first line names a file."""
    readme = open(osp.join(REPO, 'README.md')).read()
    snippets = {}
    for block in re.findall(r'```python\n(.*?)```', readme, flags=re.S):
        match = re.match(r'# (my_\w+\.py)\b', block)
        if match:
            snippets[match.group(1)] = block
    return snippets


def readme_commands() -> list:
    readme = open(osp.join(REPO, 'README.md')).read()
    lines = []
    for block in re.findall(r'```bash\n(.*?)```', readme, flags=re.S):
        lines += block.replace('\\\n', ' ').splitlines()
    return [' '.join(line.split()) for line in lines]


def data_lines(root) -> str:
    """What a copy of the data and a short run need, appended to a config that sets data."""
    return f"""
for loader in (train_dataloader, val_dataloader, test_dataloader):
    loader['dataset'].update(data_root='{root}', verify_md5=False, n_max=30, imb_factor=10,
                             val_per_class=5)
    loader.update(num_workers=0, batch_size=16)
"""


# One epoch, no validation pass (runner.test() evaluates the last stage).
SHORT_RUN = """
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=5))
"""


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('readme_methods')
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 60)
    rng.shuffle(labels)
    data = rng.integers(0, 256, size=(600, 3072), dtype=np.uint8)
    names = np.array([f'img_{i}.png' for i in range(600)])
    root = tmp / 'data' / 'cifar10'
    write_cifar10(str(root / 'cifar-10-batches-py'), data, labels, names, data[:100],
                  labels[:100], names[:100])
    return root


def run_config(path, work_dir, test=True):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(path))
    cfg.work_dir = str(work_dir)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test() if test else None
    return cfg, runner, metrics


def write_snippet(tmp_path, name, extra: str):
    text = readme_named_snippets()[name]
    path = tmp_path / name
    path.write_text(text + extra)
    return path


def state_of(checkpoint) -> dict:
    return torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']


@pytest.fixture(scope='module')
def ce_checkpoint(cifar_root, tmp_path_factory):
    """Stage 1 / the model MBJ and STG start from: the README's CE example, one epoch."""
    tmp = tmp_path_factory.mktemp('readme_ce')
    path = tmp / 'my_ce.py'
    path.write_text(readme_config_snippet() + data_lines(cifar_root) + SHORT_RUN)
    run_config(path, tmp / 'work', test=False)
    return str(tmp / 'work' / 'epoch_1.pth')


def assert_shot_metrics(metrics):
    assert {'shot/top1', 'shot/medium', 'shot/few'} <= set(metrics)
    assert 0 <= metrics['shot/top1'] <= 100


def assert_same(state, reference, prefix):
    keys = [k for k in reference if k.startswith(prefix)]
    assert keys, prefix
    for key in keys:
        torch.testing.assert_close(state[key], reference[key], rtol=0, atol=0, msg=key)


def test_every_method_has_a_snippet_and_its_commands():
    snippets = readme_named_snippets()
    assert set(snippets) >= {'my_mbj.py', 'my_iem.py', 'my_stg_stage2.py', 'my_stg_stage3.py',
                             'my_afa.py', 'my_afa_crt.py'}
    commands = readme_commands()
    for name in snippets:
        # every snippet is trained and tested by a README command line
        assert f'.venv/bin/python tools/train.py {name}' in commands, name
    for name in ('my_mbj.py', 'my_iem.py', 'my_stg_stage3.py', 'my_afa_crt.py'):
        assert any(c.startswith(f'.venv/bin/python tools/test.py {name} ') for c in commands)
    for text in snippets.values():
        if 'mmpretrain::' in text:  # a first stage: on MMPretrain's bases, with the plugin
            assert "custom_imports = dict(imports=['lt_plugins']" in text


def test_mbj_snippet(cifar_root, ce_checkpoint, tmp_path):
    path = write_snippet(tmp_path, 'my_mbj.py',
                         data_lines(cifar_root) + SHORT_RUN + f"load_from = '{ce_checkpoint}'\n")
    cfg, runner, metrics = run_config(path, tmp_path / 'work')
    head = runner.model.head
    assert type(head).__name__ == 'MBJClsHead' and head.eta == 5.0
    assert head.memory.size == 500 and int(head.memory.valid.sum()) > 0
    assert head.memory.class_counts.tolist() == COUNTS
    trained, start = state_of(tmp_path / 'work' / 'epoch_1.pth'), state_of(ce_checkpoint)
    assert_same(trained, start, 'backbone.')  # the frozen reading
    assert not torch.equal(trained['head.fc.weight'], start['head.fc.weight'])
    assert_shot_metrics(metrics)


def test_iem_snippet(cifar_root, tmp_path):
    path = write_snippet(tmp_path, 'my_iem.py', data_lines(cifar_root) + SHORT_RUN)
    cfg, runner, metrics = run_config(path, tmp_path / 'work')
    head = runner.model.head
    assert type(runner.model.neck).__name__ == 'RSANeck' and type(head).__name__ == 'IEMHead'
    # IEMMemoryHook applied the staged writes: every class wrote its images' features.
    valid = head.global_memory.valid.sum(dim=-1)
    assert (valid > 0).all(), valid
    # The memories are Adam groups at 1e-4 x the base lr; the network is SGD.
    groups = runner.optim_wrapper.optimizer.param_groups
    memory_ids = {id(p) for p in head.global_memory.parameters()}
    memory_groups = [g for g in groups if any(id(p) in memory_ids for p in g['params'])]
    assert memory_groups and all(g.get('adam') for g in memory_groups)
    assert any(not g.get('adam') for g in groups)
    assert_shot_metrics(metrics)


def test_stg_snippets_chain(cifar_root, ce_checkpoint, tmp_path):
    # head_threshold=100 of the snippet would leave no head class at 30 images a class.
    stage2 = write_snippet(tmp_path, 'my_stg_stage2.py', data_lines(cifar_root) + SHORT_RUN + (
        f"load_from = '{ce_checkpoint}'\nmodel['head']['head_threshold'] = 12\n"))
    _, runner2, _ = run_config(stage2, tmp_path / 'work2', test=False)
    assert type(runner2.model.head).__name__ == 'STGGeneratorHead'
    stage2_ckpt = str(tmp_path / 'work2' / 'epoch_1.pth')
    stage3 = write_snippet(tmp_path, 'my_stg_stage3.py', SHORT_RUN + (
        f"load_from = '{stage2_ckpt}'\nmodel['head']['head_threshold'] = 12\n"))
    cfg3, runner3, metrics = run_config(stage3, tmp_path / 'work3')
    head = runner3.model.head
    assert type(head).__name__ == 'STGClsHead' and head.lam == 0.5
    assert type(runner3.train_dataloader.sampler).__name__ == 'ClassBalancedSampler'
    trained = state_of(tmp_path / 'work3' / 'epoch_1.pth')
    assert_same(trained, state_of(ce_checkpoint), 'backbone.')  # frozen through both stages
    assert_same(trained, state_of(stage2_ckpt), 'head.generator.')  # stage 2's generator
    assert_shot_metrics(metrics)


def test_afa_snippets_chain(cifar_root, tmp_path):
    # LBLS from epoch 0, so the one epoch trains on the generated features too.
    afa = write_snippet(tmp_path, 'my_afa.py', data_lines(cifar_root) + SHORT_RUN + (
        "custom_hooks[0]['start'] = 0\n"))
    _, runner, _ = run_config(afa, tmp_path / 'work', test=False)
    assert type(runner.model.neck).__name__ == 'AFANeck'
    assert runner.model.head.lbls_weight == 2.0
    afa_ckpt = str(tmp_path / 'work' / 'epoch_1.pth')
    crt = write_snippet(tmp_path, 'my_afa_crt.py', SHORT_RUN + f"load_from = '{afa_ckpt}'\n")
    cfg, runner_crt, metrics = run_config(crt, tmp_path / 'work_crt')
    assert not any(type(h).__name__ == 'LBLSHook' for h in runner_crt.hooks)
    trained, start = state_of(tmp_path / 'work_crt' / 'epoch_1.pth'), state_of(afa_ckpt)
    assert_same(trained, start, 'backbone.')
    assert_same(trained, start, 'neck.')
    assert_shot_metrics(metrics)
