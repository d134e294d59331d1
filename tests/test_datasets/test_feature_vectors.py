"""TFRecord / tf.Example reader without TensorFlow, and FeatureVectorDataset (.npz, TFRecord)."""
import struct

import numpy as np
import pytest

import lt_plugins  # noqa: F401
from lt_plugins.datasets import FeatureVectorDataset, save_feature_npz
from lt_plugins.datasets.tfrecord import (TFRecordError, crc32c, encode_example,
                                          iter_tfrecord, masked_crc32c, parse_example,
                                          write_tfrecord)


def test_crc32c_check_values():
    assert crc32c(b'123456789') == 0xE3069283          # the CRC-32C check value
    assert crc32c(b'') == 0
    assert crc32c(bytes(32)) == 0x8A9136AA             # RFC 3720 B.4: 32 bytes of zeros
    c = crc32c(b'abc')
    assert masked_crc32c(b'abc') == (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_parse_hand_encoded_example():
    """Protobuf bytes written by hand from the wire format (not by encode_example)."""
    int64_list = bytes([0x0A, 0x03, 0x01, 0xAC, 0x02])          # packed [1, 300]
    feature_a = bytes([0x1A, 0x05]) + int64_list                 # Feature.int64_list (3)
    float_list = bytes([0x0D]) + struct.pack('<f', 1.5) + bytes([0x0D]) + struct.pack('<f', -2)
    feature_b = bytes([0x12, len(float_list)]) + float_list      # unpacked floats (wire 5)
    bytes_list = bytes([0x0A, 0x02]) + b'v1'
    feature_c = bytes([0x0A, len(bytes_list)]) + bytes_list
    entries = b''
    for name, feature in ((b'a', feature_a), (b'b', feature_b), (b'id', feature_c)):
        entry = bytes([0x0A, len(name)]) + name + bytes([0x12, len(feature)]) + feature
        entries += bytes([0x0A, len(entry)]) + entry
    example = bytes([0x0A, len(entries)]) + entries
    parsed = parse_example(example)
    assert parsed['a'].tolist() == [1, 300] and parsed['a'].dtype == np.int64
    assert parsed['b'].tolist() == [1.5, -2.0] and parsed['b'].dtype == np.float32
    assert parsed['id'] == [b'v1']
    # our encoder writes what the reader reads, incl. negative int64 (10-byte varints)
    enc = parse_example(encode_example({'x': np.array([-1, 5]), 'id': [b'q']}))
    assert enc['x'].tolist() == [-1, 5] and enc['id'] == [b'q']


def _yt8m_records(n, num_classes, seed=0, rgb=1024, audio=128):
    rng = np.random.RandomState(seed)
    rows = []
    for i in range(n):
        labels = sorted(rng.choice(num_classes, size=1 + i % 3, replace=False).tolist())
        rows.append(dict(id=[f'vid{i}'.encode()], labels=np.array(labels, np.int64),
                         mean_rgb=rng.randn(rgb).astype(np.float32),
                         mean_audio=rng.randn(audio).astype(np.float32)))
    return rows


def test_tfrecord_round_trip_yt8m_video_level(tmp_path):
    rows = _yt8m_records(5, 10)
    path = str(tmp_path / 'train0000.tfrecord')
    write_tfrecord(path, [encode_example(r) for r in rows])
    # framing by hand: first record's length + masked CRC of the length bytes
    raw = open(path, 'rb').read()
    (length, ) = struct.unpack('<Q', raw[:8])
    assert struct.unpack('<I', raw[8:12])[0] == masked_crc32c(raw[:8])
    assert struct.unpack('<I', raw[12 + length:16 + length])[0] == masked_crc32c(
        raw[12:12 + length])
    assert len(list(iter_tfrecord(path))) == 5
    ds = FeatureVectorDataset(str(tmp_path / 'train*.tfrecord'), num_classes=10,
                              feature_dim=1152, pipeline=[dict(type='PackInputs')])
    assert len(ds) == 5 and ds.dim == 1152
    for i, row in enumerate(rows):
        info = ds.get_data_info(i)
        np.testing.assert_array_equal(info['img'][:1024], row['mean_rgb'])
        np.testing.assert_array_equal(info['img'][1024:], row['mean_audio'])
        assert info['gt_label'] == row['labels'].tolist() and info['video_id'] == f'vid{i}'
    expected = np.bincount(np.concatenate([r['labels'] for r in rows]), minlength=10)
    np.testing.assert_array_equal(ds.class_counts, expected)
    packed = ds[2]
    assert tuple(packed['inputs'].shape) == (1152, )
    assert packed['data_samples'].gt_label.tolist() == rows[2]['labels'].tolist()


def test_corrupt_tfrecord_names_file(tmp_path):
    path = tmp_path / 'bad.tfrecord'
    write_tfrecord(str(path), [encode_example(r) for r in _yt8m_records(2, 10, rgb=4,
                                                                       audio=2)])
    raw = bytearray(path.read_bytes())
    raw[20] ^= 0xFF                                  # flip a data byte of record 0
    path.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=r'bad.tfrecord: record 0 has corrupt data'):
        FeatureVectorDataset(str(path), num_classes=10)
    raw[20] ^= 0xFF
    raw[3] ^= 0x01                                   # length field
    path.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=r'bad.tfrecord: record 0 has a corrupt length'):
        FeatureVectorDataset(str(path), num_classes=10)
    raw[3] ^= 0x01
    path.write_bytes(bytes(raw[:-10]))               # truncated last record
    with pytest.raises(TFRecordError, match=r'bad.tfrecord: record 1 is truncated'):
        FeatureVectorDataset(str(path), num_classes=10)


def test_npz_label_forms(tmp_path):
    feats = np.arange(12, dtype=np.float32).reshape(4, 3)
    labels = [[0], [1, 2], [2], [0, 2]]
    save_feature_npz(str(tmp_path / 'csr.npz'), feats, labels, ids=list('abcd'))
    np.savez(tmp_path / 'single.npz', features=feats, labels=np.array([0, 1, 2, 2]))
    ds = FeatureVectorDataset('csr.npz', num_classes=3, data_root=str(tmp_path))
    assert [ds.get_cat_ids(i) for i in range(4)] == labels
    assert ds.class_counts.tolist() == [2, 1, 3]
    np.testing.assert_array_equal(ds.get_data_info(3)['img'], feats[3])
    # label lists as an object array need pickle to be read: refused, naming the way out
    obj = np.empty(4, dtype=object)
    obj[:] = [np.array(x) for x in labels]
    np.savez(tmp_path / 'obj.npz', features=feats, labels=obj)
    with pytest.raises(ValueError, match=r'obj.npz: field `labels` is an object array.*'
                       r'labels_indices` / `labels_indptr` \(save_feature_npz'):
        FeatureVectorDataset('obj.npz', num_classes=3, data_root=str(tmp_path))
    assert FeatureVectorDataset(str(tmp_path / 'csr.npz'), 3).get_data_info(1)['video_id'] == 'b'
    single = FeatureVectorDataset(str(tmp_path / 'single.npz'), num_classes=3)
    assert single.class_counts.tolist() == [1, 1, 2]


def test_bad_input_errors_name_file_and_field(tmp_path):
    feats = np.zeros((3, 4), np.float32)
    save_feature_npz(str(tmp_path / 'f.npz'), feats, [[0], [1], [2]])
    with pytest.raises(ValueError, match=r'f.npz: `features` give 4-d vectors.*feature_dim=8'):
        FeatureVectorDataset(str(tmp_path / 'f.npz'), num_classes=3, feature_dim=8)
    with pytest.raises(ValueError, match=r"f.npz: sample 2 .*'labels' has label 2 outside"):
        FeatureVectorDataset(str(tmp_path / 'f.npz'), num_classes=2)
    save_feature_npz(str(tmp_path / 'e.npz'), feats, [[0], [], [2]])
    with pytest.raises(ValueError, match=r'e.npz: sample 1 .*empty label list'):
        FeatureVectorDataset(str(tmp_path / 'e.npz'), num_classes=3)
    assert len(FeatureVectorDataset(str(tmp_path / 'e.npz'), num_classes=3,
                                    allow_empty_labels=True)) == 3
    path = str(tmp_path / 'r.tfrecord')
    write_tfrecord(path, [encode_example(dict(labels=np.array([1]), mean_rgb=np.ones(4)))])
    with pytest.raises(ValueError, match=r"r.tfrecord: record 0 lacks field\(s\) \['mean_audio'\]"):
        FeatureVectorDataset(path, num_classes=3)
    with pytest.raises(ValueError, match=r"r.tfrecord: fields \('mean_rgb',\) give 4-d"):
        FeatureVectorDataset(path, num_classes=3, feature_keys=('mean_rgb', ), feature_dim=5)
    with pytest.raises(FileNotFoundError, match='nothing'):
        FeatureVectorDataset(str(tmp_path / 'nothing*.tfrecord'), num_classes=3)
