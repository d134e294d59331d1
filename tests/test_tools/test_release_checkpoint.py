"""tools/release_checkpoint.py: weights and inference state kept, training state dropped, and
tools/test.py gives the same numbers on the released file as on the training checkpoint."""
import json
import os.path as osp
import sys

import pytest
import torch

import lt_plugins  # noqa: F401
from lt_plugins.compat import SAFETENSORS_META_KEY, UntrustedCheckpointError
from tests.checkpoint_families import family_config, train_family
from tests.test_tools import load_tool

DIGITS_COUNTS = [150, 104, 73, 51, 35, 25, 17, 12, 8, 6]
# family -> state-dict prefixes the release drops (training-only modules)
DROPPED = {'iem': [], 'mbj': ['head.memory'], 'stg2': ['head.dictionary', 'head.smoother']}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    return dict(root=str(tmp_path_factory.mktemp('release')), ckpts={})


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/release_checkpoint.py')


def run_test_tool(config: str, ckpt: str, work_dir: str, monkeypatch) -> dict:
    out = osp.join(work_dir, 'metrics.json')
    monkeypatch.setattr(sys, 'argv', [
        'test.py', config, ckpt, '--work-dir', work_dir, '--out', out, '--cfg-options',
        f'experiment_name=release_test_{abs(hash((ckpt, work_dir)))}', 'log_level=WARNING'])
    load_tool('tools/test.py').main()
    with open(out) as f:
        return json.load(f)


def read_released(path: str) -> dict:
    """The released file read without lt_plugins' loader: safetensors, or a weights-only
    torch.load with torch's default allow-list (nothing added)."""
    if path.endswith('.safetensors'):
        from safetensors import safe_open
        with safe_open(path, framework='pt') as f:
            return {'state_dict': {k: f.get_tensor(k) for k in f.keys()},
                    'meta': json.loads(f.metadata()[SAFETENSORS_META_KEY])}
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.mark.parametrize('name,fmt', [('iem', 'auto'), ('mbj', 'pth'), ('stg2', 'auto')])
def test_release_keeps_inference_state_and_test_numbers(trained, tool, name, fmt, tmp_path,
                                                        monkeypatch):
    if fmt == 'auto':
        pytest.importorskip('safetensors')
    ckpt = train_family(name, trained['root'], trained['ckpts'])
    config = osp.join(trained['root'], f'{name}_digits.py')
    # auto: the default name next to the checkpoint, safetensors (installed)
    summary = tool.release(config, ckpt, None if fmt == 'auto' else
                           str(tmp_path / f'{name}_release.pth'), fmt)
    out = summary['out']
    assert out.endswith('.safetensors' if fmt == 'auto' else '.pth')

    original = torch.load(ckpt, map_location='cpu', weights_only=False)
    released = read_released(out)
    assert set(released) == {'state_dict', 'meta'}  # no optimizer, schedulers, message hub
    dropped = [k for k in original['state_dict']
               if any(k.startswith(f'{p}.') for p in DROPPED[name])]
    assert bool(dropped) == bool(DROPPED[name])
    assert set(released['state_dict']) == set(original['state_dict']) - set(dropped)
    for key, value in released['state_dict'].items():
        torch.testing.assert_close(value, original['state_dict'][key], rtol=0, atol=0, msg=key)
    if name == 'iem':  # the memories inference reads travel with the weights, written ones
        assert released['state_dict']['head.global_memory.valid'].any()
    meta = released['meta']
    assert meta['lt_class_counts'] == DIGITS_COUNTS
    assert meta['lt_dropped_training_state'] == DROPPED[name]
    assert meta['epoch'] == 1 and 'cfg' not in meta
    assert summary['size_after'] < summary['size_before'] == osp.getsize(ckpt)

    before = run_test_tool(config, ckpt, str(tmp_path / 'original'), monkeypatch)
    after = run_test_tool(config, out, str(tmp_path / 'released'), monkeypatch)
    assert after == before  # identical numbers, bit for bit
    assert set(before) >= {'shot/top1', 'shot/many', 'shot/medium', 'shot/few'}


def test_release_cli_reports_sizes(trained, tmp_path, monkeypatch, capsys):
    ckpt = train_family('mbj', trained['root'], trained['ckpts'])
    config = osp.join(trained['root'], 'mbj_digits.py')
    out = str(tmp_path / 'mbj.pth')
    monkeypatch.setattr(sys, 'argv', ['release_checkpoint.py', config, ckpt, '--out', out,
                                      '--format', 'pth'])
    load_tool('tools/release_checkpoint.py').main()
    printed = capsys.readouterr().out
    before, after = osp.getsize(ckpt) / 2**20, osp.getsize(out) / 2**20
    assert f'size: {before:.2f} MiB -> {after:.2f} MiB' in printed
    assert 'dropped: optimizer' in printed and 'dropped: head.memory.*' in printed


def test_release_refuses_a_checkpoint_of_another_model(trained, tool, tmp_path):
    ckpt = train_family('ce', trained['root'], trained['ckpts'])
    iem_config = family_config('iem', str(tmp_path))
    with pytest.raises(ValueError, match='does not fit the config'):
        tool.release(iem_config, ckpt, str(tmp_path / 'x.pth'), 'pth')
    assert not osp.exists(tmp_path / 'x.pth')


def test_release_loads_the_input_weights_only(trained, tool, tmp_path):
    ckpt = torch.load(train_family('ce', trained['root'], trained['ckpts']),
                      map_location='cpu', weights_only=False)
    ckpt['meta']['payload'] = torch.nn.Linear(1, 1)  # a pickled module: not a weight
    path = str(tmp_path / 'module.pth')
    torch.save(ckpt, path)
    config = osp.join(trained['root'], 'ce_digits.py')
    with pytest.raises(UntrustedCheckpointError, match='torch.nn.modules.linear.Linear'):
        tool.release(config, path, str(tmp_path / 'out.pth'), 'pth')
    assert not osp.exists(tmp_path / 'out.pth')


def test_release_out_name_and_format_must_agree(tool, tmp_path):
    with pytest.raises(ValueError, match='disagree'):
        tool.release('unused.py', 'unused.pth', str(tmp_path / 'x.pth'), 'safetensors')
    with pytest.raises(ValueError, match='is the input checkpoint'):
        tool.release('unused.py', str(tmp_path / 'a.pth'), str(tmp_path / 'a.pth'), 'auto')
