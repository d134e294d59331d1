"""Long-tailed datasets: LDAM profile and selection, validation split, split files, errors.

CIFAR files are written by the test in the standard python-version layout (pickled dicts
with ``data`` (N, 3072) uint8, ``labels`` / ``fine_labels``, ``filenames``; full size: 50,000
training images, shuffled labels), so the counts asserted below come from the dataset
classes reading real-format files, not from the profile function alone. The full-size files
are pickled with the highest protocol to keep the module fast; a small set written with
protocol 2 (the official files' protocol) checks that the reader handles it too. Every
full-size dataset is built once per module (``serialize_data=False`` skips mmengine's
packing, which changes nothing in the samples).
"""
import gzip
import json
import os
import os.path as osp
import pickle
import struct

import numpy as np
import pytest

import lt_plugins  # noqa: F401  (registration + compat)
from lt_plugins.datasets import (CIFAR10LT, CIFAR100LT, DigitsLT, FashionMNISTLT,
                                 draw_long_tailed_split, get_class_counts,
                                 labels_to_counts, long_tailed_counts)

CIFAR10_IR100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


# -- writers of the standard file formats ---------------------------------------------
def _dump(path, entry, protocol=pickle.HIGHEST_PROTOCOL):
    with open(path, 'wb') as f:
        pickle.dump(entry, f, protocol=protocol)


def write_cifar10(folder, data, labels, names, test_data, test_labels, test_names,
                  protocol=pickle.HIGHEST_PROTOCOL):
    """``data_batch_1..5`` (10,000 rows each), ``test_batch`` and ``batches.meta``; labels
    and names as Python ints and str, as in the official files."""
    os.makedirs(folder, exist_ok=True)
    per = len(labels) // 5
    for b in range(5):
        sl = slice(b * per, (b + 1) * per)
        _dump(osp.join(folder, f'data_batch_{b + 1}'),
              {'batch_label': f'training batch {b + 1} of 5',
               'labels': np.asarray(labels[sl]).tolist(), 'data': data[sl],
               'filenames': np.asarray(names[sl]).tolist()}, protocol)
    _dump(osp.join(folder, 'test_batch'),
          {'batch_label': 'testing batch 1 of 1', 'labels': np.asarray(test_labels).tolist(),
           'data': test_data, 'filenames': np.asarray(test_names).tolist()}, protocol)
    _dump(osp.join(folder, 'batches.meta'),
          {'label_names': [str(c) for c in range(10)], 'num_cases_per_batch': per,
           'num_vis': 3072}, protocol)


def write_cifar100(folder, data, labels, names, test_data, test_labels, test_names):
    os.makedirs(folder, exist_ok=True)
    for split, d, lab, nm in (('train', data, labels, names),
                              ('test', test_data, test_labels, test_names)):
        _dump(osp.join(folder, split),
              {'filenames': np.asarray(nm).tolist(), 'batch_label': f'{split} batch',
               'fine_labels': np.asarray(lab).tolist(),
               'coarse_labels': (np.asarray(lab) // 5).tolist(), 'data': d})
    _dump(osp.join(folder, 'meta'), {'fine_label_names': [str(c) for c in range(100)]})


def shuffled_labels(rng, num_classes, per_class):
    labels = np.repeat(np.arange(num_classes), per_class)
    rng.shuffle(labels)
    return labels


class CifarSource:
    """The arrays behind the synthetic files, for reference checks."""

    def __init__(self, root, data, labels, names):
        self.root, self.data, self.labels, self.names = root, data, labels, names

    def image(self, i):
        return self.data[i].reshape(3, 32, 32).transpose(1, 2, 0)


@pytest.fixture(scope='module')
def cifar(tmp_path_factory):
    """Full-size CIFAR-10 and CIFAR-100 python-version files plus a permuted copy."""
    base = tmp_path_factory.mktemp('cifar')
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(50000, 3072), dtype=np.uint8)
    test_data = rng.integers(0, 256, size=(10000, 3072), dtype=np.uint8)
    names = np.array([f'img_{i:05d}.png' for i in range(50000)])
    test_names = np.array([f'test_{i:05d}.png' for i in range(10000)])

    labels10 = shuffled_labels(rng, 10, 5000)
    test10 = shuffled_labels(rng, 10, 1000)
    parent10 = base / 'c10'
    root10 = str(parent10 / 'cifar-10-batches-py')
    write_cifar10(root10, data, labels10, names, test_data, test10, test_names)

    # the same images in another file order (a "rebuilt copy")
    perm = rng.permutation(50000)
    root10_perm = str(base / 'c10_perm')
    write_cifar10(root10_perm, data[perm], labels10[perm], names[perm], test_data, test10,
                  test_names)

    labels100 = shuffled_labels(rng, 100, 500)
    test100 = shuffled_labels(rng, 100, 100)
    root100 = str(base / 'cifar-100-python')
    write_cifar100(root100, data, labels100, names, test_data, test100, test_names)
    return dict(c10=CifarSource(root10, data, labels10, names), c10_parent=str(parent10),
                c10_perm=root10_perm, c100=CifarSource(root100, data, labels100, names),
                test_data=test_data, test10=test10)


FAST = dict(verify_md5=False, serialize_data=False)


@pytest.fixture(scope='module')
def cifar10_train(cifar):
    """CIFAR-10-LT IR100 ``train`` split (defaults: seed 0, n_max 5000)."""
    return CIFAR10LT(data_root=cifar['c10'].root, split='train', **FAST)


@pytest.fixture(scope='module')
def cifar10_val(cifar):
    """CIFAR-10-LT IR100 ``val`` split (its ``split_indices`` hold train and val)."""
    with pytest.warns(UserWarning, match='holdout_val=True'):
        return CIFAR10LT(data_root=cifar['c10'].root, split='val', **FAST)


@pytest.fixture(scope='module')
def small_cifar(tmp_path_factory):
    """50 training / 20 test images in protocol-2 pickles, as the official files."""
    root = str(tmp_path_factory.mktemp('small_cifar'))
    rng = np.random.default_rng(3)
    labels = shuffled_labels(rng, 10, 5)
    data = rng.integers(0, 256, size=(50, 3072), dtype=np.uint8)
    names = np.array([f's{i}.png' for i in range(50)])
    write_cifar10(root, data, labels, names, data[:20], labels[:20], names[:20], protocol=2)
    return CifarSource(root, data, labels, names)


def ldam_reference(labels, counts, seed=0):
    """LDAM's ``imbalance_cifar.py`` selection, written independently."""
    np.random.seed(seed)
    kept, rest = [], []
    for c, n_c in enumerate(counts):
        idx = np.where(labels == c)[0]
        np.random.shuffle(idx)
        kept.append(idx[:n_c])
        rest.append(idx[n_c:])
    return kept, rest


# -- profile ------------------------------------------------------------------------------
def test_profile_values():
    assert long_tailed_counts(5000, 10, 100) == CIFAR10_IR100
    assert sum(long_tailed_counts(5000, 10, 50)) == 13996
    assert sum(long_tailed_counts(5000, 10, 10)) == 20431
    c100 = long_tailed_counts(500, 100, 100)
    assert sum(c100) == 10847 and c100[0] == 500 and c100[-1] == 5
    assert sum(long_tailed_counts(500, 100, 50)) == 12608
    assert long_tailed_counts(5000, 10, 1) == [5000] * 10
    assert long_tailed_counts(5000, 10, 100, 'step') == [5000] * 5 + [50] * 5
    assert long_tailed_counts(500, 5, 10, 'step') == [500, 500, 50, 50, 50]


# -- CIFAR through the dataset classes ---------------------------------------------------
def test_cifar10_lt_ir100_counts(cifar10_train):
    ds = cifar10_train
    assert len(ds) == 12406
    assert ds.class_counts.tolist() == CIFAR10_IR100
    assert get_class_counts(ds).tolist() == CIFAR10_IR100
    info = ds.get_data_info(0)
    assert info['img'].shape == (32, 32, 3) and info['img'].dtype == np.uint8


def test_cifar10_lt_ldam_selection(cifar, cifar10_train, cifar10_val):
    src = cifar['c10']
    kept, _ = ldam_reference(src.labels, CIFAR10_IR100, seed=0)
    np.testing.assert_array_equal(cifar10_train.split_indices['train'], np.concatenate(kept))
    np.testing.assert_array_equal(cifar10_val.split_indices['train'], np.concatenate(kept))

    ds = cifar10_train
    flat = np.concatenate(kept)
    for pos in (0, 4999, 5000, 9000, 12405):  # the samples are the selected source images
        info = ds.get_data_info(pos)
        np.testing.assert_array_equal(info['img'], src.image(flat[pos]))
        assert info['gt_label'] == src.labels[flat[pos]]


def test_cifar10_lt_seed_changes_selection(cifar):
    ds = CIFAR10LT(data_root=cifar['c10'].root, split='train', seed=1, imb_factor=50, **FAST)
    assert len(ds) == 13996
    kept, _ = ldam_reference(cifar['c10'].labels, long_tailed_counts(5000, 10, 50), seed=1)
    np.testing.assert_array_equal(ds.split_indices['train'], np.concatenate(kept))


def test_cifar100_lt_ir100(cifar):
    src = cifar['c100']
    ds = CIFAR100LT(data_root=src.root, split='train', **FAST)
    assert len(ds) == 10847
    expected = [int(500 * 100 ** (-i / 99)) for i in range(100)]
    assert ds.class_counts.tolist() == expected
    kept, _ = ldam_reference(src.labels, expected, seed=0)
    np.testing.assert_array_equal(ds.split_indices['train'], np.concatenate(kept))


def test_cifar_test_split_and_parent_layout(cifar):
    # data_root = the parent of cifar-10-batches-py (MMPretrain's CIFAR layout)
    ds = CIFAR10LT(data_root=cifar['c10_parent'], split='test', **FAST)
    assert len(ds) == 10000
    assert ds.class_counts.tolist() == [1000] * 10
    np.testing.assert_array_equal(ds.get_data_info(7)['img'],
                                  cifar['test_data'][7].reshape(3, 32, 32).transpose(1, 2, 0))
    assert ds.get_data_info(7)['gt_label'] == cifar['test10'][7]
    assert ds.test_mode


def test_protocol2_pickles_and_parent_layout(small_cifar, tmp_path):
    """The official files are protocol-2 pickles read with encoding='latin1'."""
    ds = CIFAR10LT(data_root=small_cifar.root, split='train', verify_md5=False, n_max=4,
                   imb_factor=4, val_per_class=1)
    expected = [int(4 * 4 ** (-i / 9)) for i in range(10)]
    assert ds.class_counts.tolist() == expected
    kept, _ = ldam_reference(small_cifar.labels, expected, seed=0)
    flat = np.concatenate(kept)
    for pos in range(len(ds)):
        np.testing.assert_array_equal(ds.get_data_info(pos)['img'], small_cifar.image(flat[pos]))
    # the parent of cifar-10-batches-py is accepted for the training files too
    parent = tmp_path / 'parent'
    parent.mkdir()
    os.symlink(small_cifar.root, parent / 'cifar-10-batches-py')
    ds2 = CIFAR10LT(data_root=str(parent), split='train', verify_md5=False, n_max=4,
                    imb_factor=4, val_per_class=1)
    np.testing.assert_array_equal(ds2.split_indices['train'], flat)


def test_cifar_md5_mismatch(cifar):
    with pytest.raises(ValueError, match='verify_md5=False'):
        CIFAR10LT(data_root=cifar['c10'].root, split='train')  # verify_md5=True by default
    with pytest.raises(ValueError, match='md5'):
        CIFAR100LT(data_root=cifar['c100'].root, split='test', verify_md5=True)


# -- validation split ------------------------------------------------------------------
def test_val_split_balanced_disjoint_with_documented_overlap(cifar, cifar10_val):
    ds = cifar10_val
    src = cifar['c10']
    assert len(ds) == 1000
    assert ds.class_counts.tolist() == [100] * 10
    train, val = ds.split_indices['train'], ds.split_indices['val']
    assert len(np.unique(val)) == 1000
    kept, rest = ldam_reference(src.labels, CIFAR10_IR100, seed=0)
    # classes 1..9: the next 100 images of the shuffle order, none of them in training
    for c in range(1, 10):
        np.testing.assert_array_equal(val[100 * c:100 * (c + 1)], rest[c][:100])
    # class 0 keeps all 5000 images: its 100 validation images are its last 100 kept ones
    np.testing.assert_array_equal(val[:100], kept[0][-100:])
    overlap = np.intersect1d(train, val)
    np.testing.assert_array_equal(np.sort(ds.split_indices['val_overlap']), overlap)
    np.testing.assert_array_equal(overlap, np.sort(kept[0][-100:]))
    assert set(src.labels[overlap].tolist()) == {0}


def test_val_holdout_removes_overlap(cifar):
    ds = CIFAR10LT(data_root=cifar['c10'].root, split='val', holdout_val=True, **FAST)
    train, val = ds.split_indices['train'], ds.split_indices['val']
    assert len(np.intersect1d(train, val)) == 0
    assert len(ds.split_indices['val_overlap']) == 0
    train_counts = labels_to_counts(cifar['c10'].labels[train], 10)
    assert train_counts.tolist() == [4900] + CIFAR10_IR100[1:]
    assert ds.class_counts.tolist() == [100] * 10


def test_draw_split_small_reference():
    labels = np.array([0] * 6 + [1] * 6 + [2] * 6)
    out = draw_long_tailed_split(labels, [6, 3, 1], seed=3, val_per_class=2)
    kept, rest = ldam_reference(labels, [6, 3, 1], seed=3)
    np.testing.assert_array_equal(out['train'], np.concatenate(kept))
    np.testing.assert_array_equal(out['val'], np.concatenate([kept[0][-2:], rest[1][:2],
                                                               rest[2][:2]]))
    np.testing.assert_array_equal(np.sort(out['val_overlap']), np.sort(kept[0][-2:]))
    held = draw_long_tailed_split(labels, [6, 3, 1], seed=3, val_per_class=2,
                                  holdout_val=True)
    np.testing.assert_array_equal(held['train'],
                                  np.concatenate([kept[0][:4], kept[1], kept[2]]))
    assert len(np.intersect1d(held['train'], held['val'])) == 0
    with pytest.raises(ValueError, match='lower n_max'):
        draw_long_tailed_split(labels, [7, 3, 1])


# -- split files ---------------------------------------------------------------------------
def _assert_same_samples(a, b):
    assert len(a) == len(b)
    for i in range(len(a)):
        x, y = a.get_data_info(i), b.get_data_info(i)
        assert x['gt_label'] == y['gt_label']
        np.testing.assert_array_equal(x['img'], y['img'])


def test_export_split_round_trip_and_permuted_copy(cifar, cifar10_train, cifar10_val,
                                                   tmp_path):
    src = cifar['c10']
    path = str(tmp_path / 'split.json')
    cifar10_val.export_split(path)
    with open(path) as f:
        record = json.load(f)
    assert record['key'] == 'filename' and record['dataset'] == 'CIFAR10LT'
    assert record['train'] == src.names[cifar10_train.split_indices['train']].tolist()
    assert record['val'] == src.names[cifar10_val.split_indices['val']].tolist()

    # a copy with another file order; other profile arguments: the file decides the split
    copy = CIFAR10LT(data_root=cifar['c10_perm'], split='train', split_file=path, seed=3,
                     imb_factor=10, **FAST)
    assert not np.array_equal(copy.split_indices['train'], cifar10_train.split_indices['train'])
    _assert_same_samples(cifar10_train, copy)
    val_copy = CIFAR10LT(data_root=cifar['c10_perm'], split='val', split_file=path, **FAST)
    _assert_same_samples(cifar10_val, val_copy)


def test_split_file_same_copy(small_cifar, tmp_path):
    ds = CIFAR10LT(data_root=small_cifar.root, split='train', verify_md5=False, n_max=4,
                   imb_factor=4, seed=9, val_per_class=1)
    path = str(tmp_path / 'split.json')
    ds.export_split(path)
    back = CIFAR10LT(data_root=small_cifar.root, split='train', verify_md5=False,
                     split_file=path)
    _assert_same_samples(ds, back)


def test_split_file_errors(small_cifar, tmp_path):
    path = str(tmp_path / 'digits.json')
    DigitsLT(split='train').export_split(path)
    with pytest.raises(ValueError, match='DigitsLT'):
        CIFAR10LT(data_root=small_cifar.root, verify_md5=False, split_file=path)
    with pytest.raises(FileNotFoundError, match='split_file'):
        DigitsLT(split='train', split_file=str(tmp_path / 'missing.json'))
    with pytest.raises(RuntimeError, match='export_split'):
        DigitsLT(split='test').export_split(str(tmp_path / 'test.json'))
    # a file name the copy does not have
    cifar_path = str(tmp_path / 'cifar.json')
    CIFAR10LT(data_root=small_cifar.root, split='train', verify_md5=False, n_max=4,
              imb_factor=4, val_per_class=1).export_split(cifar_path)
    with open(cifar_path) as f:
        record = json.load(f)
    record['train'][0] = 'not_there.png'
    with open(cifar_path, 'w') as f:
        json.dump(record, f)
    with pytest.raises(ValueError, match='not_there.png'):
        CIFAR10LT(data_root=small_cifar.root, verify_md5=False, split_file=cifar_path)


def test_split_file_index_keys_round_trip(tmp_path):
    ds = DigitsLT(split='train', seed=7, imb_factor=10)
    path = str(tmp_path / 'split.json')
    ds.export_split(path)
    with open(path) as f:
        assert json.load(f)['key'] == 'index'
    back = DigitsLT(split='train', split_file=path)
    _assert_same_samples(ds, back)
    val = DigitsLT(split='val', split_file=path)
    _assert_same_samples(DigitsLT(split='val', seed=7, imb_factor=10), val)


# -- FashionMNIST-LT on tiny IDX files ---------------------------------------------------
def _write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim) + struct.pack(
        f'>{array.ndim}I', *array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.tobytes())


@pytest.fixture(scope='module')
def fashion_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('fashion')
    rng = np.random.default_rng(1)
    train_labels = shuffled_labels(rng, 10, 60)
    test_labels = shuffled_labels(rng, 10, 5)
    train_images = rng.integers(0, 256, size=(600, 28, 28), dtype=np.uint8)
    _write_idx(root / 'train-images-idx3-ubyte.gz', train_images)
    _write_idx(root / 'train-labels-idx1-ubyte.gz', train_labels)
    _write_idx(root / 't10k-images-idx3-ubyte.gz',
               rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8))
    _write_idx(root / 't10k-labels-idx1-ubyte.gz', test_labels)
    return dict(root=str(root), images=train_images, labels=train_labels)


def test_fashion_mnist_lt(fashion_root):
    ds = FashionMNISTLT(data_root=fashion_root['root'], split='train', n_max=50,
                        imb_factor=10, val_per_class=5)
    expected = [int(50 * 10 ** (-i / 9)) for i in range(10)]
    assert expected == [50, 38, 29, 23, 17, 13, 10, 8, 6, 5]
    assert ds.class_counts.tolist() == expected
    kept, _ = ldam_reference(fashion_root['labels'], expected, seed=0)
    np.testing.assert_array_equal(ds.split_indices['train'], np.concatenate(kept))
    info = ds.get_data_info(3)
    assert info['img'].shape == (28, 28, 1)
    np.testing.assert_array_equal(info['img'][..., 0],
                                  fashion_root['images'][np.concatenate(kept)[3]])

    test = FashionMNISTLT(data_root=fashion_root['root'], split='test')
    assert test.class_counts.tolist() == [5] * 10
    val = FashionMNISTLT(data_root=fashion_root['root'], split='val', n_max=50,
                         imb_factor=10, val_per_class=5)
    assert val.class_counts.tolist() == [5] * 10
    # default n_max (6000) exceeds the 60 images per class of these files
    with pytest.raises(ValueError, match='n_max'):
        FashionMNISTLT(data_root=fashion_root['root'], split='train')


def test_fashion_mnist_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        FashionMNISTLT(data_root=str(tmp_path), split='train', n_max=50)
    msg = str(err.value)
    assert 'data_root' in msg
    assert 'train-images-idx3-ubyte.gz' in msg and 'train-labels-idx1-ubyte.gz' in msg


# -- DigitsLT ------------------------------------------------------------------------------
def test_digits_lt():
    train = DigitsLT(split='train')
    assert train.class_counts.tolist() == [150, 104, 73, 51, 35, 25, 17, 12, 8, 6]
    assert len(train) == 481
    test = DigitsLT(split='test')
    assert test.class_counts.tolist() == [20] * 10
    val = DigitsLT(split='val')
    assert val.class_counts.tolist() == [5] * 10
    img = train.get_data_info(0)['img']
    assert img.shape == (8, 8, 1) and img.dtype == np.uint8
    # test images never appear in the training pool (compare raw pixels)
    pool, _, _ = train._load_source('train')
    test_imgs, _, _ = test._load_source('test')
    assert len(pool) + len(test_imgs) == 1797
    step = DigitsLT(split='train', imb_type='step', imb_factor=10)
    assert step.class_counts.tolist() == [150] * 5 + [15] * 5


# -- errors naming the field ---------------------------------------------------------------
def test_bad_profile_errors():
    with pytest.raises(ValueError, match='imb_type'):
        DigitsLT(split='train', imb_type='linear')
    with pytest.raises(ValueError, match='imb_factor'):
        DigitsLT(split='train', imb_factor=0.5)
    with pytest.raises(ValueError, match='imb_factor'):
        long_tailed_counts(5000, 10, 0.99)
    with pytest.raises(ValueError, match='split'):
        DigitsLT(split='training')


def test_missing_cifar_files(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        CIFAR10LT(data_root=str(tmp_path), split='train', verify_md5=False)
    msg = str(err.value)
    assert 'data_root' in msg
    for b in range(1, 6):
        assert f'data_batch_{b}' in msg
    with pytest.raises(FileNotFoundError, match="'test'"):
        CIFAR100LT(data_root=str(tmp_path), split='test', verify_md5=False)


def test_labels_outside_num_classes(tmp_path):
    with pytest.raises(ValueError, match='num_classes=3'):
        labels_to_counts([0, 1, 3], 3)
    with pytest.raises(ValueError, match='num_classes'):
        labels_to_counts([-1, 0], 3)
    assert labels_to_counts([0, 2, 2], 3).tolist() == [1, 0, 2]

    # a corrupted CIFAR-10 pickle: label 10 in a 10-class set
    rng = np.random.default_rng(2)
    labels = np.arange(50) % 10
    labels[17] = 10
    data = rng.integers(0, 256, size=(50, 3072), dtype=np.uint8)
    names = np.array([f'x{i}.png' for i in range(50)])
    write_cifar10(str(tmp_path), data, labels, names, data[:10], labels[:10], names[:10])
    with pytest.raises(ValueError, match=r'\[10\].*num_classes=10'):
        CIFAR10LT(data_root=str(tmp_path), split='train', verify_md5=False, n_max=4)


def test_digits_split_file_with_other_split_seed(tmp_path):
    ds = DigitsLT(split='train', split_seed=0)
    path = str(tmp_path / 'split.json')
    ds.export_split(path)
    try:
        back = DigitsLT(split='train', split_seed=1, split_file=path)
    except ValueError as err:  # refusing the mismatch is correct too
        assert 'split_seed' in str(err)
        return
    _assert_same_samples(ds, back)
