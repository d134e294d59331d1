"""Checkpoints load weights-only (lt_plugins.compat): the allow-list is exactly what real
checkpoints of every method family need, and a checkpoint whose unpickling would run code is
refused through every entry point (tools/test.py, load_from, --resume, and load_from /
init_cfg=Pretrained by URL from a server on 127.0.0.1) unless opted out; the package's own
checkpoints load by URL unchanged."""
import json
import os.path as osp
import pickle
import re
import shutil
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import CheckpointLoader, Runner

import lt_plugins  # noqa: F401  (registration, compatibility fixes)
from lt_plugins.compat import (TRUSTED_CHECKPOINTS_ENV, UntrustedCheckpointError,
                               checkpoint_allowed_globals)
from tests.checkpoint_families import (FAMILIES, LA_POSTHOC, TAU_NORM, digits_config,
                                       train_family)
from tests.local_http import serving
from tests.test_tools import load_tool

# numpy 1.x spellings of the numpy 2 constructors: allowed, never written by this stack
NUMPY1_ALIASES = {'numpy.core.multiarray._reconstruct', 'numpy.core.multiarray.scalar'}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Checkpoints trained on demand, shared by the tests of this module."""
    return dict(root=str(tmp_path_factory.mktemp('families')), ckpts={})


def checkpoint(trained, name: str) -> str:
    return train_family(name, trained['root'], trained['ckpts'])


def needed_globals(path: str) -> set:
    """Load ``path`` weights-only starting from an empty allow-list, adding the one global or
    built type each error names (from the package's allow-list) until it loads: what the
    file needs. A name outside the package's allow-list fails the calling test."""
    allowed, needed = checkpoint_allowed_globals(), {}
    for _ in range(2 * len(allowed) + 2):
        try:
            with torch.serialization.safe_globals([(o, n) for n, o in needed.items()]):
                torch.load(path, map_location='cpu', weights_only=True)
            return set(needed)
        except pickle.UnpicklingError as err:
            msg = str(err)
            named = (re.search(r'GLOBAL (\S+) was not an allowed global', msg)
                     or re.search(r"but got <class '([^']+)'>", msg))
            assert named, msg
            name = named.group(1)
            name = name if '.' in name else f'builtins.{name}'
            assert name in allowed, f'{path} needs {name}, not in the allow-list'
            needed[name] = allowed[name]
    raise AssertionError(f'{path}: no convergence')


def run_test_tool(config: str, ckpt: str, work_dir: str, monkeypatch) -> dict:
    """``tools/test.py CONFIG CKPT --out`` in this process; returns the metrics."""
    out = osp.join(work_dir, 'metrics.json')
    monkeypatch.setattr(sys, 'argv', [
        'test.py', config, ckpt, '--work-dir', work_dir, '--out', out, '--cfg-options',
        f'experiment_name=test_{abs(hash((config, ckpt, work_dir)))}', 'log_level=WARNING'])
    load_tool('tools/test.py').main()
    with open(out) as f:
        return json.load(f)


def run_train_tool(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, 'argv', ['train.py', *args])
    load_tool('tools/train.py').main()


# -- the allow-list is exact, and every family resumes and tests ----------------------------
FAST_FAMILIES = ['ce', 'iem', 'mbj']  # classifier only, kept memories, a FIFO queue


def _family_cycle(trained, name, tmp_path, monkeypatch):
    ckpt = checkpoint(trained, name)
    primary = set(checkpoint_allowed_globals()) - NUMPY1_ALIASES
    assert needed_globals(ckpt) == primary  # nothing in the list that checkpoints lack
    saved = torch.load(ckpt, map_location='cpu', weights_only=False)

    # --resume: the Runner restores model, optimizer, schedulers and message hub (the run
    # is complete at epoch 1, so train() only resumes)
    config = digits_config(FAMILIES[name][0], str(tmp_path / f'{name}.py'),
                           FAMILIES[name][1], max_epochs=1)
    cfg = Config.fromfile(config)
    cfg.update(work_dir=str(tmp_path / 'resumed'), resume=True, load_from=ckpt,
               experiment_name=f'resume_{name}_{tmp_path.name}', log_level='WARNING')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.epoch == 1 and runner.iter == saved['meta']['iter']
    state = runner.model.state_dict()
    assert state.keys() == saved['state_dict'].keys()
    for key, value in saved['state_dict'].items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    optimizer = runner.optim_wrapper.state_dict()['state']
    assert optimizer.keys() == saved['optimizer']['state'].keys() and len(optimizer) > 0
    np.testing.assert_array_equal(
        runner.message_hub.get_scalar('train/loss').data[0],
        saved['message_hub']['log_scalars']['train/loss'].data[0])

    metrics = run_test_tool(config, ckpt, str(tmp_path / 'test'), monkeypatch)
    assert 0 <= metrics['shot/top1'] <= 100 and 'shot/few' in metrics


@pytest.mark.parametrize('name', FAST_FAMILIES)
def test_family_checkpoint_loads_resumes_and_tests(trained, name, tmp_path, monkeypatch):
    _family_cycle(trained, name, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize('name', [n for n in FAMILIES if n not in FAST_FAMILIES])
def test_family_checkpoint_loads_resumes_and_tests_slow(trained, name, tmp_path, monkeypatch):
    _family_cycle(trained, name, tmp_path, monkeypatch)


@pytest.mark.slow
def test_tau_norm_tests_on_the_ce_checkpoint(trained, tmp_path, monkeypatch):
    config = digits_config(TAU_NORM, str(tmp_path / 'taunorm.py'))
    metrics = run_test_tool(config, checkpoint(trained, 'ce'), str(tmp_path), monkeypatch)
    assert 0 <= metrics['shot/top1'] <= 100


@pytest.mark.slow
def test_post_hoc_logit_adjustment_tests_on_the_ce_checkpoint(trained, tmp_path, monkeypatch):
    """tools/test.py refuses a checkpoint with missing keys: the CE checkpoint has no counts
    of the post-hoc part, which takes them from the checkpoint meta instead. tau 0 is CE."""
    ce = checkpoint(trained, 'ce')
    base = run_test_tool(digits_config(FAMILIES['ce'][0], str(tmp_path / 'ce.py')), ce,
                         str(tmp_path / 'ce'), monkeypatch)
    read = {}
    for tau in (0.0, 1.0):
        config = digits_config(LA_POSTHOC, str(tmp_path / f'la{tau:g}.py'),
                               f'head=dict(logit_adjustment=dict(tau={tau}))')
        read[tau] = run_test_tool(config, ce, str(tmp_path / f'la{tau:g}'), monkeypatch)
    assert read[0.0]['shot/top1'] == pytest.approx(base['shot/top1'])
    assert 0 <= read[1.0]['shot/top1'] <= 100


def test_refusal_names_the_type_and_the_opt_out(tmp_path):
    path = str(tmp_path / 'float32.pth')
    torch.save({'state_dict': {}, 'meta': {'x': np.zeros(2, np.float32)}}, path)
    with pytest.raises(UntrustedCheckpointError) as info:
        CheckpointLoader.load_checkpoint(path)
    float32_class = type(np.dtype(np.float32))  # numpy.dtypes.Float32DType on numpy >= 1.25
    assert f'needs {float32_class.__module__}.{float32_class.__qualname__}, outside' \
        in str(info.value)
    assert f'{TRUSTED_CHECKPOINTS_ENV}=1' in str(info.value)
    # allowing just that type is the narrower way out
    with torch.serialization.safe_globals([float32_class]):
        assert CheckpointLoader.load_checkpoint(path)['meta']['x'].dtype == np.float32


def test_history_buffer_getattr_is_the_only_getattr(tmp_path):
    from mmengine.logging import HistoryBuffer

    class GetattrOther:
        def __reduce__(self):
            return getattr, (HistoryBuffer, 'update')

    path = str(tmp_path / 'getattr.pth')
    torch.save({'meta': {'x': GetattrOther()}}, path)
    with pytest.raises(UntrustedCheckpointError, match=r"getattr\(.*HistoryBuffer.*'update'") \
            as info:
        CheckpointLoader.load_checkpoint(path)
    assert 'needs something outside' in str(info.value)  # HistoryBuffer itself is allowed


def test_bad_opt_out_value(monkeypatch, tmp_path):
    path = str(tmp_path / 'w.pth')
    torch.save({'state_dict': {'w': torch.ones(1)}}, path)
    monkeypatch.setenv(TRUSTED_CHECKPOINTS_ENV, 'maybe')
    with pytest.raises(ValueError, match=TRUSTED_CHECKPOINTS_ENV):
        CheckpointLoader.load_checkpoint(path)


# -- a crafted checkpoint runs no code through any entry point -------------------------------
class _WritesAFile:
    """Unpickling this runs ``exec``: it writes the file ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").write("code ran")', )


@pytest.fixture()
def crafted(trained, tmp_path):
    """A real CE checkpoint (epoch 1) with one extra object whose unpickling writes a file."""
    ckpt = torch.load(checkpoint(trained, 'ce'), map_location='cpu', weights_only=False)
    marker = str(tmp_path / 'code_ran')
    ckpt['meta']['payload'] = _WritesAFile(marker)
    work = tmp_path / 'work'
    work.mkdir()
    path = str(work / 'epoch_1.pth')
    torch.save(ckpt, path)
    (work / 'last_checkpoint').write_text(path)  # for --resume without a path
    config = digits_config(FAMILIES['ce'][0], str(tmp_path / 'ce.py'), max_epochs=1)
    return dict(path=path, marker=marker, config=config, work=str(work), tmp=tmp_path)


def _entry_point(kind: str, crafted: dict, monkeypatch) -> None:
    name = f'experiment_name={kind}_{crafted["tmp"].name}'
    if kind == 'tools/test.py':
        run_test_tool(crafted['config'], crafted['path'], str(crafted['tmp'] / 'test'),
                      monkeypatch)
    elif kind == 'load_from':
        run_train_tool(monkeypatch, crafted['config'], '--work-dir',
                       str(crafted['tmp'] / 'load_from'), '--no-validate', '--cfg-options',
                       f'load_from={crafted["path"]}', name, 'log_level=WARNING')
    elif kind == '--resume CKPT':
        run_train_tool(monkeypatch, crafted['config'], '--work-dir',
                       str(crafted['tmp'] / 'resume'), '--resume', crafted['path'],
                       '--cfg-options', name, 'log_level=WARNING')
    else:  # --resume: the latest checkpoint of the work dir
        run_train_tool(monkeypatch, crafted['config'], '--work-dir', crafted['work'],
                       '--resume', '--cfg-options', name, 'log_level=WARNING')


ENTRY_POINTS = ['tools/test.py', 'load_from', '--resume CKPT', '--resume']


@pytest.mark.parametrize('kind', ENTRY_POINTS)
def test_crafted_checkpoint_is_refused(kind, crafted, monkeypatch):
    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec') as info:
        _entry_point(kind, crafted, monkeypatch)
    assert TRUSTED_CHECKPOINTS_ENV in str(info.value)
    assert not osp.exists(crafted['marker'])


@pytest.mark.parametrize('kind', ENTRY_POINTS)
def test_crafted_checkpoint_runs_with_the_opt_out(kind, crafted, monkeypatch):
    """The opt-out loads it, so the refusal above is what kept the file from being written."""
    monkeypatch.setenv(TRUSTED_CHECKPOINTS_ENV, '1')
    _entry_point(kind, crafted, monkeypatch)
    assert open(crafted['marker']).read() == 'code ran'


# -- by URL: load_from / init_cfg=Pretrained through the Runner, and the package's own files ---
@pytest.fixture()
def site(tmp_path, monkeypatch):
    """A folder served on 127.0.0.1 (see tests/local_http.py), downloads into a temporary
    torch hub dir."""
    root = tmp_path / 'site'
    root.mkdir()
    with serving(str(root), str(tmp_path / 'torch_home'), monkeypatch) as server:
        yield SimpleNamespace(root=str(root), url=server.url, server=server)


def _by_url(kind: str, crafted: dict, url: str, monkeypatch) -> None:
    """tools/train.py with the checkpoint at ``url`` as ``load_from`` or as the model's
    ``init_cfg=dict(type='Pretrained', checkpoint=url)``."""
    name = f'experiment_name={kind.split()[0]}_url_{crafted["tmp"].name}'
    config = crafted['config']
    options = ['--cfg-options', name, 'log_level=WARNING']
    if kind == 'load_from URL':
        options.append(f'load_from={url}')
    else:
        config = str(crafted['tmp'] / 'pretrained.py')
        with open(config, 'w') as f:
            f.write(f"_base_ = [{crafted['config']!r}]\n"
                    f"model = dict(init_cfg=dict(type='Pretrained', checkpoint={url!r}))\n")
    run_train_tool(monkeypatch, config, '--work-dir', str(crafted['tmp'] / kind.split()[0]),
                   '--no-validate', *options)


URL_ENTRY_POINTS = ['load_from URL', 'init_cfg=Pretrained URL']


@pytest.mark.parametrize('kind', URL_ENTRY_POINTS)
def test_crafted_checkpoint_by_url_is_refused(kind, crafted, site, monkeypatch):
    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    shutil.copy(crafted['path'], osp.join(site.root, 'epoch_1.pth'))
    url = f'{site.url}/epoch_1.pth'
    with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec') as info:
        _by_url(kind, crafted, url, monkeypatch)
    assert TRUSTED_CHECKPOINTS_ENV in str(info.value) and url in str(info.value)
    assert not osp.exists(crafted['marker'])
    assert site.server.requests == ['/epoch_1.pth']  # it was fetched, then refused


@pytest.mark.parametrize('kind', URL_ENTRY_POINTS)
def test_crafted_checkpoint_by_url_runs_with_the_opt_out(kind, crafted, site, monkeypatch):
    """Control: the opt-out loads it by URL, so the refusal kept the file from being written."""
    monkeypatch.setenv(TRUSTED_CHECKPOINTS_ENV, '1')
    shutil.copy(crafted['path'], osp.join(site.root, 'epoch_1.pth'))
    _by_url(kind, crafted, f'{site.url}/epoch_1.pth', monkeypatch)
    assert open(crafted['marker']).read() == 'code ran'


def _assert_same_checkpoint(loaded: dict, saved: dict) -> None:
    assert loaded['state_dict'].keys() == saved['state_dict'].keys()
    for key, value in saved['state_dict'].items():
        torch.testing.assert_close(loaded['state_dict'][key], value, rtol=0, atol=0, msg=key)
    for key in ('epoch', 'iter', 'lt_class_counts'):
        assert loaded['meta'].get(key) == saved['meta'].get(key), key


def _family_by_url(trained, name, site, tmp_path, monkeypatch) -> None:
    """The family's checkpoint by URL: the same tensors and meta as on disk, and the same
    tools/test.py metrics as the local file."""
    ckpt = checkpoint(trained, name)
    shutil.copy(ckpt, osp.join(site.root, f'{name}.pth'))
    url = f'{site.url}/{name}.pth'
    saved = torch.load(ckpt, map_location='cpu', weights_only=False)
    _assert_same_checkpoint(CheckpointLoader.load_checkpoint(url, map_location='cpu'), saved)
    config = digits_config(FAMILIES[name][0], str(tmp_path / f'{name}.py'), FAMILIES[name][1])
    local = run_test_tool(config, ckpt, str(tmp_path / 'local'), monkeypatch)
    remote = run_test_tool(config, url, str(tmp_path / 'remote'), monkeypatch)
    assert remote == local and 'shot/top1' in local


@pytest.mark.parametrize('name', FAST_FAMILIES)
def test_family_checkpoint_loads_by_url(trained, name, site, tmp_path, monkeypatch):
    _family_by_url(trained, name, site, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize('name', [n for n in FAMILIES if n not in FAST_FAMILIES])
def test_family_checkpoint_loads_by_url_slow(trained, name, site, tmp_path, monkeypatch):
    _family_by_url(trained, name, site, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize('name,fmt', [('iem', 'safetensors'), ('mbj', 'pth')])
def test_released_checkpoint_loads_by_url(trained, name, fmt, site, tmp_path, monkeypatch):
    """tools/release_checkpoint.py's files by URL give the training checkpoint's metrics."""
    if fmt == 'safetensors':
        pytest.importorskip('safetensors')
    ckpt = checkpoint(trained, name)
    config = digits_config(FAMILIES[name][0], str(tmp_path / f'{name}.py'), FAMILIES[name][1])
    released = osp.join(site.root, f'{name}_release.{fmt}')
    load_tool('tools/release_checkpoint.py').release(config, ckpt, released, fmt)
    url = f'{site.url}/{name}_release.{fmt}'
    from_url = CheckpointLoader.load_checkpoint(url, map_location='cpu')
    local_release = CheckpointLoader.load_checkpoint(released, map_location='cpu')
    _assert_same_checkpoint(from_url, local_release)
    local = run_test_tool(config, ckpt, str(tmp_path / 'local'), monkeypatch)
    remote = run_test_tool(config, url, str(tmp_path / 'remote'), monkeypatch)
    assert remote == local
