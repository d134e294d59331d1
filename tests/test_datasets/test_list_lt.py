"""ImageNet-LT / Places-LT / iNaturalist 2018 list datasets on tiny synthetic lists."""
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
            Image.fromarray(np.full((8, 8, 3), label * 10 + i, np.uint8)).save(path)
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
    ds = cls(data_root=str(tmp_path), split='train')
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
    write_list(tmp_path, 'iNaturalist18_val.txt', [7, 7, 8141])
    ds = INaturalist2018(data_root=str(tmp_path), split='test')
    assert len(ds) == 3 and ds.class_counts[7] == 2
    write_list(tmp_path, 'mine.txt', [0, 1])
    ds = PlacesLT(data_root=str(tmp_path), ann_file='mine.txt', num_classes=2,
                  classes=['a', 'b'])
    assert ds.class_counts.tolist() == [1, 1] and ds.CLASSES == ('a', 'b')


def test_label_outside_num_classes_names_file_and_line(tmp_path):
    write_list(tmp_path, 'Places_LT_train.txt', [0, 364, 365])
    with pytest.raises(ValueError, match=r'Places_LT_train\.txt:3: label 365 .*num_classes=365'):
        PlacesLT(data_root=str(tmp_path))
    (tmp_path / 'bad.txt').write_text('a.jpg 0\nb.jpg\n')
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
    write_list(tmp_path, 'ImageNet_LT_train.txt', [4, 4, 9])
    ds = DATASETS.build(dict(type='ImageNetLT', data_root=str(tmp_path), split='train'))
    assert isinstance(ds, ImageNetLT) and ds.class_counts[4] == 2
