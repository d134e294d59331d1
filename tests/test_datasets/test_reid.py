"""ReIDDataset: Market/Duke name parsing, junk/distractor handling, long-tailed H edition."""
import numpy as np
import pytest

import lt_plugins  # noqa: F401
from lt_plugins.datasets.class_counts import get_class_counts
from lt_plugins.datasets.reid import ReIDDataset, parse_reid_name
from mmpretrain.registry import DATASETS


def _touch(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b'')


@pytest.fixture
def market(tmp_path):
    train = []
    # ids 2, 7, 9, 11, 20, 31 with 12, 8, 3, 6, 10, 7 images over cameras 1-3
    for pid, n in ((2, 12), (7, 8), (9, 3), (11, 6), (20, 10), (31, 7)):
        train += [f'{pid:04d}_c{1 + i % 3}s1_{i:06d}_00.jpg' for i in range(n)]
    _touch(tmp_path / 'bounding_box_train', train + ['Thumbs.db'])
    _touch(tmp_path / 'query', ['0002_c1s1_000001_00.jpg', '0007_c2s1_000002_00.jpg'])
    _touch(tmp_path / 'bounding_box_test',
           ['-1_c1s1_000001_00.jpg', '0000_c1s1_000002_00.jpg', '0002_c2s1_000003_00.jpg',
            '0002_c1s1_000004_00.jpg', '0007_c1s1_000005_00.jpg'])
    return tmp_path


def test_parse_names():
    assert parse_reid_name('0002_c1s1_000451_03.jpg') == (2, 0)
    assert parse_reid_name('/x/0001_c2_f0046182.jpg') == (1, 1)  # DukeMTMC-reID
    assert parse_reid_name('-1_c3s2_000001_00.jpg') == (-1, 2)
    assert parse_reid_name('readme.txt') is None


def test_splits_relabel_junk_and_distractors(market):
    train = DATASETS.build(dict(type='ReIDDataset', data_root=str(market), split='train'))
    assert len(train) == 46 and train.num_classes == 6
    assert get_class_counts(train).tolist() == [12, 8, 3, 6, 10, 7]
    info = train.get_data_info(12)
    assert info['gt_label'] == 1 and info['pid'] == 7 and info['camid'] == 0
    gallery = ReIDDataset(str(market), split='gallery')
    pids = [gallery.get_data_info(i)['pid'] for i in range(len(gallery))]
    assert pids == [0, 2, 2, 7]  # junk (-1) dropped, distractor (0) kept
    test = ReIDDataset(str(market), split='test')
    flags = [test.get_data_info(i)['is_query'] for i in range(len(test))]
    assert flags == [True, True, False, False, False, False] and test.test_mode


def test_long_tailed_edition(market):
    lt = ReIDDataset(str(market), split='train', num_head_ids=2, tail_images=5, seed=3)
    counts = get_class_counts(lt)
    full = np.array([12, 8, 3, 6, 10, 7])
    head = counts == full
    # exactly 2 head ids keep everything among those above 5 images; the rest are cut to 5
    assert (counts[~head] == 5).all() and len(counts) == 6
    assert int((counts == full)[full > 5].sum()) == 2
    assert counts[2] == 3  # an id with fewer than 5 images keeps all of them
    again = ReIDDataset(str(market), split='train', num_head_ids=2, tail_images=5, seed=3)
    assert [again.get_data_info(i)['img_path'] for i in range(len(again))] == \
        [lt.get_data_info(i)['img_path'] for i in range(len(lt))]
    largest = ReIDDataset(str(market), split='train', num_head_ids=2, head_selection='largest')
    assert get_class_counts(largest).tolist() == [12, 5, 3, 5, 10, 5]


def test_reid_dataset_errors(market, tmp_path):
    with pytest.raises(ValueError, match='num_head_ids=10'):
        ReIDDataset(str(market), split='train', num_head_ids=10)
    with pytest.raises(ValueError, match='train split only'):
        ReIDDataset(str(market), split='query', num_head_ids=2)
    with pytest.raises(FileNotFoundError, match='bounding_box_train'):
        ReIDDataset(str(tmp_path / 'nowhere'), split='train')
