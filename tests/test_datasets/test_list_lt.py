"""ImageNet-LT / Places-LT / iNaturalist 2018 list datasets on tiny synthetic lists."""
import re

import numpy as np
import pytest
from PIL import Image

from lt_plugins.datasets import get_class_counts
from lt_plugins.datasets.list_lt import INaturalist2018, ImageNetLT, PlacesLT


def write_list(root, name, labels, make_images=False):
    lines = []
    for i, label in enumerate(labels):
        rel = f'train/c{label}/img_{i}.png'
        if make_images:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8, 3), (label * 10 + i) % 256, np.uint8)).save(path)
        lines.append(f'{rel} {label}')
    (root / name).write_text('\n'.join(lines) + '\n')


@pytest.mark.parametrize('cls, name, num_classes', [
    (ImageNetLT, 'ImageNet_LT_train.txt', 1000),
    (PlacesLT, 'Places_LT_train.txt', 365),
    (INaturalist2018, 'iNaturalist18_train.txt', 8142),
])
def test_counts_from_standard_list(tmp_path, cls, name, num_classes):
    labels = [0] * 5 + [3] * 2 + [num_classes - 1]
    write_list(tmp_path, name, labels)
    ds = cls(data_root=str(tmp_path), split='train', check_files=False)  # no image files
    assert len(ds) == 8 and ds.num_classes == num_classes
    counts = ds.class_counts
    assert counts.dtype == np.int64 and counts.shape == (num_classes, )
    assert counts[0] == 5 and counts[3] == 2 and counts[-1] == 1 and counts.sum() == 8
    np.testing.assert_array_equal(get_class_counts(ds), counts)
    np.testing.assert_array_equal(ds.get_gt_labels(), labels)
    assert len(ds.metainfo['classes']) == num_classes
    assert ds.get_data_info(5)['img_path'] == str(tmp_path / 'train/c3/img_5.png')
    assert not ds.test_mode


def test_images_load_through_pipeline_and_split_files(tmp_path):
    write_list(tmp_path, 'ImageNet_LT_val.txt', [2, 1, 2], make_images=True)
    ds = ImageNetLT(data_root=str(tmp_path), split='val',
                    pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    assert ds.test_mode and ds.metainfo['classes'][0].startswith('tench')
    item = ds[1]
    assert tuple(item['inputs'].shape) == (3, 8, 8)
    assert int(item['data_samples'].gt_label) == 1
    assert int(item['inputs'][0, 0, 0]) == 1 * 10 + 1
    sub = ds.get_subset([0, 2])
    np.testing.assert_array_equal(sub.get_gt_labels(), [2, 2])
    assert sub.class_counts[2] == 2 and sub.class_counts.sum() == 2


def test_inat_test_split_reads_val_list_and_ann_file_override(tmp_path):
    write_list(tmp_path, 'iNaturalist18_val.txt', [7, 7, 8141], make_images=True)
    ds = INaturalist2018(data_root=str(tmp_path), split='test')
    assert len(ds) == 3 and ds.class_counts[7] == 2
    write_list(tmp_path, 'mine.txt', [0, 1], make_images=True)
    ds = PlacesLT(data_root=str(tmp_path), ann_file='mine.txt', num_classes=2,
                  classes=['a', 'b'])
    assert ds.class_counts.tolist() == [1, 1] and ds.CLASSES == ('a', 'b')


def test_label_outside_num_classes_names_file_and_line(tmp_path):
    write_list(tmp_path, 'Places_LT_train.txt', [0, 364, 365])
    with pytest.raises(ValueError, match=r'Places_LT_train\.txt:3: label 365 of image '
                       r'\S+train/c365/img_2\.png is outside .*num_classes=365'):
        PlacesLT(data_root=str(tmp_path))
    (tmp_path / 'bad.txt').write_text('a.jpg 0\nb.jpg\n')  # malformed before any file check
    with pytest.raises(ValueError, match=r'bad\.txt:2: expected'):
        PlacesLT(data_root=str(tmp_path), ann_file='bad.txt')


def test_missing_list_file_names_expected_path(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r'ImageNet_LT_test\.txt.*data_root.*ann_file'):
        ImageNetLT(data_root=str(tmp_path), split='test')
    with pytest.raises(ValueError, match='split'):
        ImageNetLT(data_root=str(tmp_path), split='training')


def test_build_from_registry(tmp_path):
    from mmpretrain.registry import DATASETS
    write_list(tmp_path, 'ImageNet_LT_train.txt', [4, 4, 9], make_images=True)
    ds = DATASETS.build(dict(type='ImageNetLT', data_root=str(tmp_path), split='train'))
    assert isinstance(ds, ImageNetLT) and ds.class_counts[4] == 2


# -- bad entries: missing file, corrupt image, label out of range ----------------------------
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


class _Records:
    def __init__(self):
        self.messages = []

    def __enter__(self):
        import logging
        from mmengine.logging import MMLogger
        records = self

        class Handler(logging.Handler):
            def emit(self, record):
                records.messages.append(record.getMessage())

        self.logger = MMLogger.get_current_instance()
        self.handler = Handler(logging.WARNING)
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)


def _bad_list(tmp_path):
    """Six lines of classes 0-2: line 2's image is missing, line 4's is corrupt (half a
    PNG), line 5 has label 7 (outside 3 classes)."""
    write_list(tmp_path, 'mine.txt', [0, 0, 1, 1, 2, 2], make_images=True)
    (tmp_path / 'train/c0/img_1.png').unlink()
    png = (tmp_path / 'train/c1/img_3.png').read_bytes()
    (tmp_path / 'train/c1/img_3.png').write_bytes(png[:len(png) // 2])
    lines = (tmp_path / 'mine.txt').read_text().splitlines()
    lines[4] = lines[4].replace(' 2', ' 7')
    (tmp_path / 'mine.txt').write_text('\n'.join(lines) + '\n')
    return dict(data_root=str(tmp_path), ann_file='mine.txt', num_classes=3,
                classes=['a', 'b', 'c'], pipeline=PIPELINE)


def test_missing_image_named_with_list_line_at_build(tmp_path):
    cfg = _bad_list(tmp_path)
    (tmp_path / 'mine.txt').write_text('\n'.join(
        (tmp_path / 'mine.txt').read_text().splitlines()[:4]) + '\n')  # lines 1-4 only
    with pytest.raises(FileNotFoundError,
                       match=r'mine\.txt:2: image \S+train/c0/img_1\.png listed by PlacesLT '
                             r'not found; check `data_root`.*skip_bad_images=True'):
        PlacesLT(**cfg)
    # opted out of the check: the loader names the line when it reaches it
    ds = PlacesLT(check_files=False, **cfg)
    assert len(ds) == 4 and int(ds[0]['data_samples'].gt_label) == 0
    with pytest.raises(FileNotFoundError,
                       match=r'mine\.txt:2: image \S+train/c0/img_1\.png of PlacesLT is '
                             r'missing \(found by the data pipeline: FileNotFoundError'):
        ds[1]


def test_corrupt_image_named_with_list_line(tmp_path):
    cfg = _bad_list(tmp_path)
    (tmp_path / 'train/c0/img_1.png').write_bytes(
        (tmp_path / 'train/c0/img_0.png').read_bytes())  # only the corrupt image is bad
    (tmp_path / 'mine.txt').write_text('\n'.join(
        (tmp_path / 'mine.txt').read_text().splitlines()[:4]) + '\n')
    ds = PlacesLT(**cfg)  # the existence check passes: the file is there
    with pytest.raises(ValueError, match=r'mine\.txt:4: image \S+train/c1/img_3\.png of '
                                         r'PlacesLT is corrupt \(the decoder returned no '
                                         r'image\) \(found by the data pipeline'):
        ds[3]
    with pytest.raises(ValueError, match=r'mine\.txt:4: image \S+train/c1/img_3\.png of '
                                         r'PlacesLT is corrupt \(the decoder returned no '
                                         r'image\); fix or remove the line'):
        PlacesLT(check_files='decode', **cfg)  # found at build time
    # a pipeline error that is not the image's passes through unchanged
    def broken(results):
        raise KeyError('not about the image')

    ds = PlacesLT(**dict(cfg, pipeline=[dict(type='LoadImageFromFile'), broken]))
    with pytest.raises(KeyError, match='not about the image'):
        ds[0]


def test_label_out_of_range_named_with_list_line_and_image(tmp_path):
    cfg = _bad_list(tmp_path)
    with pytest.raises(ValueError, match=r'mine\.txt:5: label 7 of image \S+train/c2/img_4\.png '
                                         r'is outside \[0, num_classes=3\) of PlacesLT'):
        PlacesLT(check_files=False, **cfg)


def test_skip_bad_images_logs_each_once_and_recounts_classes(tmp_path):
    cfg = _bad_list(tmp_path)
    with _Records() as log:
        ds = PlacesLT(skip_bad_images=True, **cfg)
        again = PlacesLT(skip_bad_images=True, **cfg)
    # lines 1, 3, 6 kept: classes 0, 1, 2 once each (the full list would count 2, 2, 2)
    assert len(ds) == len(again) == 3
    np.testing.assert_array_equal(ds.get_gt_labels(), [0, 1, 2])
    np.testing.assert_array_equal(ds.class_counts, [1, 1, 1])
    np.testing.assert_array_equal(get_class_counts(ds), [1, 1, 1])
    assert [e['line'] for e in ds.bad_entries] == [5, 2, 4]
    per_entry = [m for m in log.messages if m.startswith('PlacesLT: skipped')]
    assert len(per_entry) == 3  # each bad line once, though the dataset was built twice
    assert any(re.search(r'mine\.txt:2: image \S+img_1\.png is missing', m) for m in per_entry)
    assert any(re.search(r'mine\.txt:4: image \S+img_3\.png is corrupt', m) for m in per_entry)
    assert any(re.search(r'mine\.txt:5: image \S+img_4\.png is labelled 7, a label out of '
                         r'range', m) for m in per_entry)
    summary = [m for m in log.messages if 'skip_bad_images skipped' in m]
    assert len(summary) == 2 and ('skipped 3 of 6 listed images (1 corrupt, 1 labelled, '
                                  '1 missing); the class counts') in summary[0]
    assert 'recomputed on the 3 kept images' in summary[0]
    assert [int(ds[i]['data_samples'].gt_label) for i in range(3)] == [0, 1, 2]
    # existence only: the corrupt image is kept (and would raise in the loader)
    assert len(PlacesLT(skip_bad_images=True, check_files=True, **cfg)) == 4


def test_check_files_arguments(tmp_path):
    cfg = _bad_list(tmp_path)
    with pytest.raises(ValueError, match=r"`check_files` must be True / 'exists'"):
        PlacesLT(check_files='yes', **cfg)
    with pytest.raises(ValueError, match=r'`skip_bad_images=True` needs the build-time check'):
        PlacesLT(check_files=False, skip_bad_images=True, **cfg)
