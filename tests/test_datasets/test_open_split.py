"""Open splits (OLTR open-set protocol) of the in-memory LT datasets and the list datasets."""
import numpy as np
import pytest

import lt_plugins  # noqa: F401
from lt_plugins.datasets import DigitsLT, get_class_counts
from lt_plugins.datasets.list_lt import ImageNetLT, PlacesLT
from lt_plugins.datasets.long_tailed import resolve_known_classes


def test_resolve_known_classes():
    assert resolve_known_classes(None, 10) is None
    assert resolve_known_classes(3, 10).tolist() == [0, 1, 2]
    # seeded: the first K of RandomState(seed).permutation(C), sorted
    ref = np.sort(np.random.RandomState(5).permutation(10)[:4]).tolist()
    assert resolve_known_classes(4, 10, known_seed=5).tolist() == ref
    assert resolve_known_classes([7, 2, 4], 10).tolist() == [2, 4, 7]
    for bad in (10, 1, [1, 1, 2], [0, 10], list(range(10))):
        with pytest.raises(ValueError, match='known_classes'):
            resolve_known_classes(bad, 10)
    with pytest.raises(ValueError, match='known_seed'):
        resolve_known_classes([1, 2], 10, known_seed=0)


def test_digits_open_split_counts_and_unknown_labels():
    train = DigitsLT(split='train', known_classes=8)
    # profile over the 8 known classes: int(150 * 25 ** (-i / 7))
    expected = [int(150 * 25 ** (-i / 7)) for i in range(8)]
    assert expected == [150, 94, 59, 37, 23, 15, 9, 6]
    assert train.class_counts.tolist() == expected
    assert get_class_counts(train).tolist() == expected
    assert train.num_classes == 8 and train.metainfo['classes'] == tuple('01234567')
    assert train.get_gt_labels().min() == 0            # no unknowns in training
    val = DigitsLT(split='val', known_classes=8)
    labels = val.get_gt_labels()
    # 5 per known class + 5 per left-out class (labelled -1)
    assert np.bincount(labels + 1).tolist() == [10] + [5] * 8
    assert val.class_counts.tolist() == [5] * 8
    test = DigitsLT(split='test', known_classes=8)
    closed = DigitsLT(split='test')
    tl, cl = test.get_gt_labels(), closed.get_gt_labels()
    np.testing.assert_array_equal(tl, np.where(cl >= 8, -1, cl))   # same images, relabelled
    # val unknowns come from the training pool, disjoint from training images
    tr_imgs = {train.get_data_info(i)['img'].tobytes() for i in range(len(train))}
    unk = [val.get_data_info(i)['img'].tobytes() for i in np.where(labels < 0)[0]]
    assert not tr_imgs & set(unk)
    sample = test.prepare_data(int(np.where(tl < 0)[0][0]))
    assert sample['gt_label'] == -1


def test_digits_open_split_seeded_relabels():
    train = DigitsLT(split='train', known_classes=6, known_seed=3)
    known = np.sort(np.random.RandomState(3).permutation(10)[:6])
    assert train.known_classes.tolist() == known.tolist()
    assert train.metainfo['classes'] == tuple(str(c) for c in known)
    test = DigitsLT(split='test', known_classes=6, known_seed=3)
    closed = DigitsLT(split='test').get_gt_labels()
    remap = np.full(10, -1)
    remap[known] = np.arange(6)
    np.testing.assert_array_equal(test.get_gt_labels(), remap[closed])
    with pytest.raises(RuntimeError, match='closed-set'):
        train.export_split('/tmp/unused.json')


def _write(root, name, lines):
    (root / name).write_text('\n'.join(lines) + '\n')


def test_list_open_ann_file(tmp_path):
    _write(tmp_path, 'ImageNet_LT_test.txt', ['a.jpg 0', 'b.jpg 999'])
    _write(tmp_path, 'ImageNet_LT_open.txt', ['o1.jpg -1', 'o2.jpg'])
    ds = ImageNetLT(data_root=str(tmp_path), split='test',
                    open_ann_file='ImageNet_LT_open.txt', check_files=False)
    assert ds.get_gt_labels().tolist() == [0, 999, -1, -1]
    assert ds.get_data_info(3)['img_path'].endswith('o2.jpg')
    counts = ds.class_counts
    assert counts.sum() == 2 and counts[0] == 1 and counts[999] == 1
    _write(tmp_path, 'bad_open.txt', ['o1.jpg 3'])
    with pytest.raises(ValueError, match=r'bad_open.txt:1'):
        ImageNetLT(data_root=str(tmp_path), split='test', open_ann_file='bad_open.txt')
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        ImageNetLT(data_root=str(tmp_path), split='test', open_ann_file='missing.txt')


def test_list_minus_one_needs_allow_unknown(tmp_path):
    _write(tmp_path, 'Places_LT_test.txt', ['a.jpg 3', 'u.jpg -1'])
    with pytest.raises(ValueError, match=r'Places_LT_test.txt:2.*allow_unknown'):
        PlacesLT(data_root=str(tmp_path), split='test')
    ds = PlacesLT(data_root=str(tmp_path), split='test', allow_unknown=True,
                  check_files=False)
    assert ds.get_gt_labels().tolist() == [3, -1]
