"""Pre-extracted feature vectors with (multi-)labels: ``.npz`` files and YouTube-8M TFRecords."""
import glob
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .tfrecord import TFRecordError, iter_tfrecord, parse_example


def save_feature_npz(path: str, features: np.ndarray, labels: Sequence[Sequence[int]],
                     ids: Optional[Sequence[str]] = None) -> None:
    """Write ``features (N, D)`` and per-sample label lists as the CSR-style ``.npz`` that
    :class:`FeatureVectorDataset` reads (``labels_indices``, ``labels_indptr``, ``ids``)."""
    lengths = np.array([len(x) for x in labels], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = (np.concatenate([np.asarray(x, dtype=np.int64) for x in labels])
               if len(labels) else np.zeros(0, np.int64))
    extra = {} if ids is None else dict(ids=np.asarray([str(i) for i in ids]))
    np.savez(path, features=np.asarray(features, dtype=np.float32), labels_indices=indices,
             labels_indptr=indptr, **extra)


# what to store instead of an object array, by field
_NPZ_INSTEAD = {
    'labels': ('the CSR pair `labels_indices` / `labels_indptr` (save_feature_npz writes it '
               'from per-sample label lists), or a 1-D integer array for one label each'),
    'ids': 'a string array (np.asarray(ids, dtype=str))',
}


@DATASETS.register_module()
class FeatureVectorDataset(BaseDataset):
    """Fixed-length feature vectors with one or more labels each (no images, no pipeline maths).

    The vector setting of IEM (Zhu & Yang, CVPR 2020, Sec. 4.3.2, Table 3: YouTube-8M
    video-level features). Two sources, chosen by the file name:

    * ``.npz`` with ``features`` ``(N, D)`` float and the labels as one of: the CSR pair
      ``labels_indices`` / ``labels_indptr`` (sample ``i`` has
      ``labels_indices[indptr[i]:indptr[i+1]]``, as :func:`save_feature_npz` writes); or
      ``labels`` a 1-D integer array (one label each). Optional ``ids`` (a string array).
      Read without pickle (``allow_pickle=False``): an object array (e.g. ``labels`` as
      per-sample lists) could run code when read and is refused, naming the field.
    * YouTube-8M **video-level** TFRecords (any other extension; a glob pattern or a list of
      files): each ``tf.train.Example`` holds ``id`` (bytes), ``labels`` (int64 list) and
      float lists named by ``feature_keys`` (default ``mean_rgb`` 1024-d and ``mean_audio``
      128-d, concatenated in that order: 1152-d). Read by :mod:`lt_plugins.datasets.tfrecord`
      (no TensorFlow).

    Each sample is ``dict(img=<float32 (D,) vector>, gt_label=[labels...], video_id=...)``;
    ``PackInputs`` turns it into a ``(D,)`` input tensor, and MMPretrain's
    ``ClsDataPreprocessor`` without ``mean`` / ``std`` stacks the batch to ``(N, D)`` unchanged.
    ``class_counts`` counts every label occurrence (a video with labels ``[3, 7]`` counts once
    for class 3 and once for class 7), so many / medium / few splits follow the label
    frequencies.

    Everything is held in memory (YouTube-8M's full 3.9M training videos need ~18 GB as
    float32: point ``data_file`` at a subset of the shards).

    Errors name the file and the field: a feature dimension other than ``feature_dim``, a
    label outside ``[0, num_classes)``, an empty label list (unless ``allow_empty_labels``),
    a missing field, a corrupt TFRecord.

    Args:
        data_file (str | Sequence[str]): ``.npz`` file, TFRecord file, glob pattern or list;
            relative paths are joined with ``data_root``.
        num_classes (int): size of the label space.
        feature_dim (int, optional): expected ``D``; checked against the data when given
            (set it to the backbone's ``in_channels``). Defaults to None.
        feature_keys (Sequence[str]): TFRecord float features concatenated into the vector.
            Defaults to ``('mean_rgb', 'mean_audio')``.
        label_key (str): TFRecord int64 feature of the labels. Defaults to ``'labels'``.
        id_key (str): TFRecord bytes feature of the sample id. Defaults to ``'id'``.
        classes (Sequence[str], optional): class names; default ``'0', '1', ...``.
        allow_empty_labels (bool): keep samples without labels (all-negative). Defaults to
            False.
        verify_crc (bool): verify TFRecord data checksums (pure Python, ~1 MB/s). Defaults
            to True.
        **kwargs: MMPretrain ``BaseDataset`` arguments (``pipeline``, ``data_root``,
            ``test_mode``, ``indices`` ...).
    """

    def __init__(self,
                 data_file: Union[str, Sequence[str]],
                 num_classes: int,
                 feature_dim: Optional[int] = None,
                 feature_keys: Sequence[str] = ('mean_rgb', 'mean_audio'),
                 label_key: str = 'labels',
                 id_key: str = 'id',
                 classes: Optional[Sequence[str]] = None,
                 allow_empty_labels: bool = False,
                 verify_crc: bool = True,
                 data_root: str = '',
                 **kwargs) -> None:
        if int(num_classes) < 1:
            raise ValueError(f'FeatureVectorDataset: num_classes={num_classes} must be >= 1.')
        self.num_classes = int(num_classes)
        self.feature_dim = None if feature_dim is None else int(feature_dim)
        self.feature_keys = tuple(feature_keys)
        self.label_key, self.id_key = label_key, id_key
        self.allow_empty_labels = bool(allow_empty_labels)
        self.verify_crc = bool(verify_crc)
        self.data_file = data_file
        self._root = data_root
        if classes is None:
            classes = tuple(str(i) for i in range(self.num_classes))
        if len(classes) != self.num_classes:
            raise ValueError(f'FeatureVectorDataset: {len(classes)} class names for '
                             f'num_classes={self.num_classes}.')
        super().__init__(ann_file='', data_root=data_root, classes=classes, **kwargs)

    # ----------------------------------------------------------------- files
    def _files(self) -> List[str]:
        entries = [self.data_file] if isinstance(self.data_file, str) else list(self.data_file)
        files = []
        for entry in entries:
            path = entry if osp.isabs(entry) or not self._root else osp.join(self._root, entry)
            matched = sorted(glob.glob(path)) if any(c in path for c in '*?[') else [path]
            if not matched or not all(osp.isfile(p) for p in matched):
                raise FileNotFoundError(f'FeatureVectorDataset: data_file {path!r} matches no '
                                        'file; check `data_file` / `data_root`.')
            files.extend(matched)
        return files

    @staticmethod
    def _npz_field(data: 'np.lib.npyio.NpzFile', key: str, path: str) -> np.ndarray:
        """``data[key]`` read without pickle; an object array is refused."""
        try:
            return data[key]
        except ValueError as err:
            if 'allow_pickle' not in str(err):
                raise
            store = _NPZ_INSTEAD.get(key, 'a numeric array')
            raise ValueError(
                f'{path}: field `{key}` is an object array, which is read with pickle and could '
                f'run code from the file; FeatureVectorDataset reads .npz files without '
                f'pickle. Store `{key}` as {store}.') from None

    def _read_npz(self, path: str) -> Tuple[np.ndarray, List[np.ndarray], List[str]]:
        with np.load(path, allow_pickle=False) as data:
            if 'features' not in data.files:
                raise ValueError(f'{path}: no `features` array (fields: {data.files}).')
            features = np.asarray(self._npz_field(data, 'features', path), dtype=np.float32)
            if features.ndim != 2:
                raise ValueError(f'{path}: field `features` has shape {features.shape}; '
                                 'expected (N, D).')
            n = len(features)
            if 'labels_indices' in data.files and 'labels_indptr' in data.files:
                indices = np.asarray(self._npz_field(data, 'labels_indices', path),
                                     dtype=np.int64)
                indptr = np.asarray(self._npz_field(data, 'labels_indptr', path),
                                    dtype=np.int64)
                if len(indptr) != n + 1 or indptr[0] != 0 or indptr[-1] != len(indices) \
                        or np.any(np.diff(indptr) < 0):
                    raise ValueError(f'{path}: fields `labels_indptr` / `labels_indices` are '
                                     f'not a valid CSR pair for {n} samples.')
                labels = [indices[indptr[i]:indptr[i + 1]] for i in range(n)]
            elif 'labels' in data.files:
                raw = self._npz_field(data, 'labels', path)
                if raw.ndim == 1 and np.issubdtype(raw.dtype, np.integer):
                    labels = [np.asarray([x], dtype=np.int64) for x in raw]
                else:
                    raise ValueError(f'{path}: field `labels` of dtype {raw.dtype} and shape '
                                     f'{raw.shape}: use a 1-D integer array, or '
                                     'labels_indices / labels_indptr for label lists.')
                if len(labels) != n:
                    raise ValueError(f'{path}: {len(labels)} label lists for {n} feature rows.')
            else:
                raise ValueError(f'{path}: no labels (`labels`, or `labels_indices` + '
                                 f'`labels_indptr`); fields: {data.files}.')
            ids = ([str(x) for x in self._npz_field(data, 'ids', path)]
                   if 'ids' in data.files
                   else [f'{osp.basename(path)}:{i}' for i in range(n)])
        return features, labels, ids

    def _read_tfrecord(self, path: str) -> Tuple[np.ndarray, List[np.ndarray], List[str]]:
        features, labels, ids = [], [], []
        try:
            for index, record in enumerate(iter_tfrecord(path, self.verify_crc)):
                try:
                    example = parse_example(record)
                except TFRecordError as err:
                    raise TFRecordError(f'{path}: record {index} is not a valid tf.Example '
                                        f'({err}).') from None
                missing = [k for k in (*self.feature_keys, self.label_key) if k not in example]
                if missing:
                    raise ValueError(f'{path}: record {index} lacks field(s) {missing} '
                                     f'(it has {sorted(example)}); set `feature_keys` / '
                                     '`label_key`.')
                parts = []
                for key in self.feature_keys:
                    value = example[key]
                    if isinstance(value, list) or value.dtype != np.float32:
                        raise ValueError(f'{path}: record {index} field {key!r} is not a float '
                                         'list.')
                    parts.append(value)
                features.append(np.concatenate(parts))
                labels.append(np.asarray(example[self.label_key], dtype=np.int64))
                vid = example.get(self.id_key)
                ids.append(vid[0].decode('utf-8', 'replace') if isinstance(vid, list) and vid
                           else f'{osp.basename(path)}:{index}')
        except TFRecordError as err:
            raise TFRecordError(f'FeatureVectorDataset: {err}') from None
        dims = {len(f) for f in features}
        if len(dims) > 1:
            raise ValueError(f'{path}: records have feature dimensions {sorted(dims)} (fields '
                             f'{self.feature_keys}); every record must have the same.')
        array = (np.stack(features) if features
                 else np.zeros((0, self.feature_dim or 0), np.float32))
        return array, labels, ids

    # ------------------------------------------------------------------ load
    def load_data_list(self) -> List[dict]:
        data_list: List[dict] = []
        for path in self._files():
            reader = self._read_npz if path.endswith('.npz') else self._read_tfrecord
            features, labels, ids = reader(path)
            field = '`features`' if path.endswith('.npz') else f'fields {self.feature_keys}'
            if self.feature_dim is not None and len(features) and \
                    features.shape[1] != self.feature_dim:
                raise ValueError(
                    f'{path}: {field} give {features.shape[1]}-d vectors but the config says '
                    f'feature_dim={self.feature_dim}; set `feature_dim` (and the backbone\'s '
                    '`in_channels`) to the data\'s dimension.')
            for i, (vec, labs, vid) in enumerate(zip(features, labels, ids)):
                if labs.size == 0 and not self.allow_empty_labels:
                    raise ValueError(
                        f'{path}: sample {i} (id {vid!r}) has an empty label list '
                        f'(field {self.label_key!r}); multi-label training needs >= 1 label '
                        'per sample, or pass allow_empty_labels=True to keep it as an '
                        'all-negative sample.')
                bad = labs[(labs < 0) | (labs >= self.num_classes)]
                if bad.size:
                    raise ValueError(
                        f'{path}: sample {i} (id {vid!r}) field {self.label_key!r} has label '
                        f'{int(bad[0])} outside the class list [0, num_classes='
                        f'{self.num_classes}); fix the data or `num_classes`.')
                data_list.append(dict(img=vec, gt_label=[int(x) for x in labs],
                                      video_id=vid))
        return data_list

    # ---------------------------------------------------------------- labels
    def get_cat_ids(self, idx: int) -> List[int]:
        return list(self.get_data_info(idx)['gt_label'])

    def get_gt_labels(self):
        raise TypeError('FeatureVectorDataset is multi-label: use get_cat_ids(i) or '
                        'class_counts (every label occurrence counted).')

    @property
    def class_counts(self) -> np.ndarray:
        """Per-class number of label occurrences (int64, length ``num_classes``)."""
        labels = [np.asarray(self.get_cat_ids(i), dtype=np.int64) for i in range(len(self))]
        flat = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        return np.bincount(flat, minlength=self.num_classes).astype(np.int64)

    @property
    def dim(self) -> int:
        """Feature dimension ``D`` (of the first sample)."""
        return int(len(self.get_data_info(0)['img'])) if len(self) else (self.feature_dim or 0)

    def __repr__(self) -> str:  # BaseDataset's repr prints the ann_file
        return (f'FeatureVectorDataset({len(self)} samples, D={self.dim}, '
                f'{self.num_classes} classes, files={self.data_file!r})')
