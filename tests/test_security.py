"""No loading path of the package runs code from a file: checkpoints by URL and by every
remote or named scheme mmengine registers, feature-vector ``.npz`` files, CIFAR batch files
and the tools. Each crafted file writes a marker file when unpickled; each refusal test has
a control where the same file, loaded the unsafe way (the opt-out, or plain pickle), writes
the marker, so the refusal is what kept it from being written.

Checkpoints by URL come from a file server on 127.0.0.1 that the test starts (port chosen
by the kernel, stopped at the end or after 5 minutes) into a temporary torch hub cache.
``tests/test_checkpoint_loading.py`` covers ``load_from`` / ``init_cfg`` by URL through
the Runner and the package's own checkpoints by URL.
"""
import os
import os.path as osp
import pickle
import shutil
import struct
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.runner import CheckpointLoader
from mmengine.runner import checkpoint as mm_checkpoint

import lt_plugins  # noqa: F401  (the weights-only loaders)
from lt_plugins.compat import TRUSTED_CHECKPOINTS_ENV, UntrustedCheckpointError, load_from_local
from lt_plugins.datasets import CIFAR10LT, FeatureVectorDataset
from lt_plugins.datasets.cifar_lt import CifarBatchError, load_cifar_batch
from lt_plugins.engine import remote_checkpoints
from tests.local_http import serving
from tests.test_tools import load_tool


class WritesAFile:
    """Unpickling this runs ``exec``: it writes the file ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f'open({self.marker!r}, "w").write("code ran")', )


WEIGHTS = {'backbone.w': torch.arange(6.).view(2, 3), 'head.b': torch.tensor([0.5, -1.])}


def save_crafted(path: str, marker: str) -> str:
    """A checkpoint with real weights and one object whose unpickling writes ``marker``."""
    torch.save({'state_dict': dict(WEIGHTS), 'meta': {'epoch': 1,
                                                      'payload': WritesAFile(marker)}}, path)
    return path


def assert_weights(checkpoint: dict, weights: dict = WEIGHTS) -> None:
    state = checkpoint['state_dict']
    assert state.keys() == weights.keys()
    for key, value in weights.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def code_ran(marker: str) -> bool:
    return osp.exists(marker) and open(marker).read() == 'code ran'


@pytest.fixture()
def site(tmp_path, monkeypatch):
    """``root`` served at ``url`` on 127.0.0.1; downloads go to ``cache`` (a temporary
    torch hub dir); ``marker`` is the file a crafted checkpoint writes."""
    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    root = tmp_path / 'site'
    root.mkdir()
    with serving(str(root), str(tmp_path / 'torch_home'), monkeypatch) as server:
        cache = osp.join(torch.hub.get_dir(), 'checkpoints')
        assert cache.startswith(str(tmp_path))  # never the user's real cache
        yield SimpleNamespace(root=str(root), url=server.url, server=server, cache=cache,
                              marker=str(tmp_path / 'code_ran'))


# -- http(s):// ---------------------------------------------------------------------------
def test_crafted_checkpoint_by_url_is_refused_and_not_kept_in_the_cache(site):
    save_crafted(osp.join(site.root, 'evil.pth'), site.marker)
    url = f'{site.url}/evil.pth'
    for attempt in (1, 2):  # refused again (downloaded and checked again) the second time
        with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec') as info:
            CheckpointLoader.load_checkpoint(url)
        message = str(info.value)
        assert f'{TRUSTED_CHECKPOINTS_ENV}=1' in message and url in message
        assert 'deleted from the download cache' in message
        assert not osp.exists(site.marker)
        assert os.listdir(site.cache) == []  # nothing left that looks like a good download
        assert site.server.requests == ['/evil.pth'] * attempt


def test_crafted_checkpoint_by_url_runs_with_the_opt_out(site, monkeypatch):
    """Control: the same download with the opt-out runs the payload (and is cached)."""
    save_crafted(osp.join(site.root, 'evil.pth'), site.marker)
    monkeypatch.setenv(TRUSTED_CHECKPOINTS_ENV, '1')
    assert_weights(CheckpointLoader.load_checkpoint(f'{site.url}/evil.pth'))
    assert code_ran(site.marker)
    assert os.listdir(site.cache) == ['evil.pth']


def test_crafted_file_already_in_the_cache_is_checked_and_deleted(site):
    """A file an earlier (unpatched) run downloaded is read weights-only too."""
    os.makedirs(site.cache)
    save_crafted(osp.join(site.cache, 'evil.pth'), site.marker)
    with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec'):
        CheckpointLoader.load_checkpoint(f'{site.url}/evil.pth')
    assert site.server.requests == [] and not osp.exists(site.marker)
    assert os.listdir(site.cache) == []


def test_good_checkpoints_by_url_load_unchanged_and_are_cached(site):
    # what mmengine puts into a checkpoint besides weights: numpy arrays and scalars
    meta = {'epoch': 3, 'hist': np.arange(4, dtype=np.float64), 'step': np.int64(7)}
    torch.save({'state_dict': dict(WEIGHTS), 'meta': meta}, osp.join(site.root, 'good.pth'))
    for _ in range(2):
        checkpoint = CheckpointLoader.load_checkpoint(f'{site.url}/good.pth')
        assert_weights(checkpoint)
        np.testing.assert_array_equal(checkpoint['meta']['hist'], meta['hist'])
        assert checkpoint['meta']['step'] == 7
    assert site.server.requests == ['/good.pth']  # the second load read the cache


def test_safetensors_by_url(site):
    from safetensors.torch import save_file
    save_file(dict(WEIGHTS), osp.join(site.root, 'release.safetensors'),
              metadata={'lt_plugins_meta': '{"epoch": 2}'})
    checkpoint = CheckpointLoader.load_checkpoint(f'{site.url}/release.safetensors')
    assert_weights(checkpoint)
    assert checkpoint['meta'] == {'epoch': 2}


def test_legacy_zip_download_is_unpacked_and_checked(site):
    """torch.hub unpacks a zip holding one checkpoint (torch < 1.6 habit); so do we, and
    the unpacked file is read weights-only like any other."""
    import zipfile
    inner = save_crafted(osp.join(site.root, 'inner.pth'), site.marker)
    with zipfile.ZipFile(osp.join(site.root, 'packed.zip'), 'w') as archive:
        archive.write(inner, 'inner.pth')
    with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec'):
        CheckpointLoader.load_checkpoint(f'{site.url}/packed.zip')
    assert not osp.exists(site.marker) and os.listdir(site.cache) == []
    torch.save({'state_dict': dict(WEIGHTS)}, inner)  # a good one in the same packing
    with zipfile.ZipFile(osp.join(site.root, 'packed.zip'), 'w') as archive:
        archive.write(inner, 'inner.pth')
    assert_weights(CheckpointLoader.load_checkpoint(f'{site.url}/packed.zip'))


# -- named schemes: torchvision://, modelzoo://, open-mmlab://, openmmlab://, mmcls:// ---------
NAMED = ['torchvision://evil', 'modelzoo://evil', 'open-mmlab://evil', 'openmmlab://evil',
         'mmcls://evil', 'open-mmlab://home_file']


def _name_tables(site, monkeypatch, tmp_path) -> None:
    """mmengine's model-name tables point ``evil`` at the local server (and ``home_file``
    at a file under a temporary mmengine home, open-mmlab's other form)."""
    url = f'{site.url}/evil.pth'
    monkeypatch.setattr(mm_checkpoint, 'get_torchvision_models', lambda: {'evil': url})
    monkeypatch.setattr(mm_checkpoint, 'get_mmcls_models', lambda: {'evil': url})
    monkeypatch.setattr(mm_checkpoint, 'get_external_models',
                        lambda: {'evil': url, 'home_file': 'mine/evil.pth'})
    monkeypatch.setattr(mm_checkpoint, 'get_deprecated_model_names', lambda: {})
    home = tmp_path / 'mmengine_home'
    (home / 'mine').mkdir(parents=True)
    shutil.copy(osp.join(site.root, 'evil.pth'), home / 'mine' / 'evil.pth')
    monkeypatch.setattr(mm_checkpoint, '_get_mmengine_home', lambda: str(home))


@pytest.mark.parametrize('trusted', [False, True], ids=['refused', 'opt-out control'])
@pytest.mark.parametrize('name', NAMED)
def test_named_schemes_load_weights_only(name, trusted, site, monkeypatch, tmp_path):
    save_crafted(osp.join(site.root, 'evil.pth'), site.marker)
    _name_tables(site, monkeypatch, tmp_path)
    if not trusted:
        with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec'):
            CheckpointLoader.load_checkpoint(name)
        assert not osp.exists(site.marker)
        return
    monkeypatch.setenv(TRUSTED_CHECKPOINTS_ENV, '1')
    checkpoint = CheckpointLoader.load_checkpoint(name)
    assert code_ran(site.marker)
    if name.startswith('mmcls://'):  # mmengine's processing is kept: backbone weights only
        assert_weights(checkpoint, {'w': WEIGHTS['backbone.w']})
    else:
        assert_weights(checkpoint)


# -- pavi://, s3:// (fetched into a temporary file) ---------------------------------------
def _fake_sources(path: str, monkeypatch) -> None:
    """A pavi model cloud and an s3 file backend that hand out the file ``path``."""
    model = SimpleNamespace(name='evil.pth',
                            download=lambda dst: shutil.copy(path, dst))
    pavi = types.ModuleType('pavi')
    pavi.modelcloud = SimpleNamespace(get=lambda name: model)
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    backend = SimpleNamespace(get=lambda filename: open(path, 'rb').read())
    monkeypatch.setattr(remote_checkpoints, 'get_file_backend',
                        lambda filename, backend_args: backend)


@pytest.mark.parametrize('trusted', [False, True], ids=['refused', 'opt-out control'])
@pytest.mark.parametrize('name', ['pavi://models/evil', 's3://bucket/evil.pth',
                                  'cluster:petrel://bucket/evil.pth'])
def test_fetched_schemes_load_weights_only(name, trusted, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    marker = str(tmp_path / 'code_ran')
    _fake_sources(save_crafted(str(tmp_path / 'evil.pth'), marker), monkeypatch)
    if not trusted:
        with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec') as info:
            CheckpointLoader.load_checkpoint(name)
        assert f'checkpoint {name}:' in str(info.value)  # names the source, not a temp file
        assert not osp.exists(marker)
        return
    monkeypatch.setenv(TRUSTED_CHECKPOINTS_ENV, '1')
    assert_weights(CheckpointLoader.load_checkpoint(name))
    assert code_ran(marker)


def test_every_registered_scheme_loads_weights_only():
    """Each prefix mmengine registers (and any added since) resolves to a weights-only
    loader of the package, so no scheme is left to mmengine's own torch.load."""
    ours = {load_from_local, *remote_checkpoints.REMOTE_LOADERS.values()}
    schemes = dict(CheckpointLoader._schemes)
    assert {'', 'http://', 'https://', 'torchvision://', 'modelzoo://', 'open-mmlab://',
            'openmmlab://', 'mmcls://', 'pavi://', r'(\S+\:)?s3://',
            r'(\S+\:)?petrel://'} <= set(schemes)
    assert {prefix: loader for prefix, loader in schemes.items() if loader not in ours} == {}
    for path in ('https://host/x.pth', 'http://host/x.pth', 'open-mmlab:s3://b/x.pth'):
        assert CheckpointLoader._get_checkpoint_loader(path) in ours


# -- feature vectors (.npz) ---------------------------------------------------------------
def test_crafted_npz_is_read_without_pickle(tmp_path):
    marker = str(tmp_path / 'code_ran')
    labels = np.empty(2, dtype=object)
    labels[:] = [WritesAFile(marker), [1]]
    path = str(tmp_path / 'evil.npz')
    np.savez(path, features=np.zeros((2, 3), np.float32), labels=labels)
    with pytest.raises(ValueError, match=r'evil.npz: field `labels` is an object array.*'
                       r'Store `labels` as the CSR pair'):
        FeatureVectorDataset(path, num_classes=2)
    assert not osp.exists(marker)
    np.load(path, allow_pickle=True)['labels']  # control: the old way of reading runs it
    assert code_ran(marker)


def test_npz_object_ids_are_refused_with_the_fix(tmp_path):
    path = str(tmp_path / 'ids.npz')
    np.savez(path, features=np.zeros((2, 3), np.float32), labels=np.array([0, 1]),
             ids=np.array(['a', 1], dtype=object))
    with pytest.raises(ValueError, match=r'field `ids` is an object array.*string array'):
        FeatureVectorDataset(path, num_classes=2)


# -- CIFAR batch files --------------------------------------------------------------------
def _short(text: str) -> bytes:  # SHORT_BINSTRING: a Python 2 str
    raw = text.encode('latin1')
    return b'U' + bytes([len(raw)]) + raw


def official_style_batch(data: np.ndarray, labels, names) -> bytes:
    """A batch pickled as the official (Python 2, numpy 1) files are: protocol 2, Python 2
    strings, ``numpy.core.multiarray._reconstruct``. Written opcode by opcode."""
    rows, cols = data.shape
    raw = data.tobytes()
    out = b'\x80\x02}(' + _short('batch_label') + _short('training batch 1 of 5')
    out += (_short('data') + b'cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n'
            + b'K\x00\x85' + _short('b') + b'\x87R(K\x01J' + struct.pack('<i', rows)
            + b'J' + struct.pack('<i', cols) + b'\x86cnumpy\ndtype\n' + _short('u1')
            + b'K\x00K\x01\x87R(K\x03' + _short('|')
            + b'NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T'
            + struct.pack('<I', len(raw)) + raw + b'tb')
    out += _short('labels') + b'](' + b''.join(b'K' + bytes([x]) for x in labels) + b'e'
    out += _short('filenames') + b'](' + b''.join(_short(n) for n in names) + b'e'
    return out + b'u.'


@pytest.mark.parametrize('protocol', ['official', 2, 4, 5])
def test_cifar_batches_of_every_protocol_read_as_plain_pickle_does(tmp_path, protocol):
    data = np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072).astype(np.uint8)
    entry = {'batch_label': 'training batch 1 of 5', 'data': data, 'labels': [3, 7],
             'filenames': ['a.png', 'b.png']}
    path = tmp_path / 'data_batch_1'
    path.write_bytes(official_style_batch(data, [3, 7], ['a.png', 'b.png'])
                     if protocol == 'official' else pickle.dumps(entry, protocol=protocol))
    with open(path, 'rb') as f:
        reference = pickle.load(f, encoding='latin1')
    read = load_cifar_batch(str(path))
    assert read.keys() == reference.keys() == entry.keys()
    np.testing.assert_array_equal(read['data'], data)
    assert read['data'].dtype == np.uint8
    assert [read[k] for k in ('labels', 'filenames', 'batch_label')] == \
        [entry[k] for k in ('labels', 'filenames', 'batch_label')]


@pytest.mark.skipif(not osp.isdir(osp.join(osp.dirname(__file__), '..', '..', 'shared',
                                           'data', 'cifar-10-batches-py')),
                    reason='no CIFAR-10 copy in ../shared/data')
def test_real_cifar_files_read_as_plain_pickle_does():
    root = osp.join(osp.dirname(__file__), '..', '..', 'shared', 'data', 'cifar-10-batches-py')
    for name in ('test_batch', 'batches.meta'):
        with open(osp.join(root, name), 'rb') as f:
            reference = pickle.load(f, encoding='latin1')
        read = load_cifar_batch(osp.join(root, name))
        assert read.keys() == reference.keys()
        for key, value in reference.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(read[key], value)
            else:
                assert read[key] == value


def _cifar_folder(root, payload) -> None:
    """Valid tiny batch files; ``data_batch_1`` carries ``payload``."""
    os.makedirs(root)
    data = np.zeros((10, 3072), np.uint8)
    entry = {'batch_label': 'b', 'data': data, 'labels': list(range(10)),
             'filenames': [f'{i}.png' for i in range(10)]}
    for name in ('data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4',
                 'data_batch_5', 'test_batch'):
        with open(osp.join(root, name), 'wb') as f:
            pickle.dump(dict(entry, extra=payload) if name == 'data_batch_1' else entry, f)


def test_crafted_cifar_batch_is_refused_without_md5_check(tmp_path):
    marker = str(tmp_path / 'code_ran')
    root = str(tmp_path / 'cifar-10-batches-py')
    _cifar_folder(root, WritesAFile(marker))
    with pytest.raises(CifarBatchError, match=r'data_batch_1: unpickling it needs or holds '
                       r'builtins\.exec'):
        CIFAR10LT(data_root=root, split='train', verify_md5=False)
    assert not osp.exists(marker)
    with open(osp.join(root, 'data_batch_1'), 'rb') as f:  # control: plain pickle runs it
        pickle.load(f, encoding='latin1')
    assert code_ran(marker)


@pytest.mark.parametrize('payload,found', [
    (np.array([1, None], dtype=object), 'array of dtype object'),
    (np.array(['a', 'b']), 'array of dtype <U1'),
    (np.float32(1.5), 'numpy._core.multiarray.scalar'),
    ({'x': 1.5}, r"\['extra'\]\['x'\]: a builtins.float"),
    ((1, 2), r"\['extra'\]: a builtins.tuple"),
], ids=['object array', 'str array', 'numpy scalar', 'float', 'tuple'])
def test_cifar_batch_with_other_types_is_refused(tmp_path, payload, found):
    root = str(tmp_path / 'cifar-10-batches-py')
    _cifar_folder(root, payload)
    with pytest.raises(CifarBatchError, match=found):
        load_cifar_batch(osp.join(root, 'data_batch_1'))
    assert isinstance(load_cifar_batch(osp.join(root, 'data_batch_2'))['data'], np.ndarray)


# -- tools ----------------------------------------------------------------------------------
def test_afa_recompute_bn_reads_checkpoints_weights_only(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    tool = load_tool('tools/analysis/afa_recompute_bn.py')
    model = nn.Module()
    model.tail = nn.BatchNorm1d(2)
    marker = str(tmp_path / 'code_ran')
    src = str(tmp_path / 'epoch_1.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {'payload': WritesAFile(marker)}},
               src)
    with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec'):
        tool.rewrite_checkpoint(src, str(tmp_path / 'out.pth'), model, 'tail')
    assert not osp.exists(marker)
    monkeypatch.setenv(TRUSTED_CHECKPOINTS_ENV, '1')  # control
    assert tool.rewrite_checkpoint(src, str(tmp_path / 'out.pth'), model, 'tail') == \
        ['tail.running_mean', 'tail.running_var']
    assert code_ran(marker)
