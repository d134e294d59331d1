"""The long-tailed profile and split logic shared by CIFAR-LT, FashionMNIST-LT and DigitsLT.

Profile (LDAM, Cao et al. 2019, ``imbalance_cifar.py``): class ``i`` keeps
``n_i = int(n_max * IR ** (-i / (C - 1)))`` images (``'exp'``), or ``n_max`` for the first
``C // 2`` classes and ``int(n_max / IR)`` for the rest (``'step'``). Which images: one
``np.random.RandomState(seed)`` shuffles each class's indices in label order and the first
``n_i`` are kept -- exactly LDAM's ``np.random.seed(0); np.random.shuffle(idx)`` sequence.

Validation split: ``val_per_class`` images per class taken from the images the profile
*discards* (the next ones in the same shuffled order), so it is balanced and disjoint from
the training split. A class the profile keeps (almost) whole -- the largest class of an
``'exp'`` profile keeps all of its images -- has too few discarded images; its remaining
validation images are the last ones of its kept list, i.e. they are also training images.
That overlap is reported in a warning; ``holdout_val=True`` removes them from the training
split instead (the counts of those classes then fall below the standard protocol).

Open split (OLTR-style open-set protocol, ``known_classes=``): only the *known* classes are
trained on. ``known_classes=K`` keeps the first ``K`` classes in label order (with
``known_seed=s``: the ``K`` classes ``np.random.RandomState(s).permutation(C)[:K]``, sorted);
a list names them. Known classes are relabelled ``0..K-1`` in increasing original label and
the dataset's ``classes`` become their names. The profile is applied to the ``K`` known
classes as a ``K``-class problem (same ``n_max`` and ``imb_factor``, ``n_i = int(n_max *
IR ** (-i / (K - 1)))`` for the ``i``-th known class), drawn as above. The validation split
holds ``val_per_class`` discarded images of every known class and, drawn with
``RandomState(seed + 1)`` from each left-out class's images in label order, ``val_per_class``
images of every left-out class labelled ``-1`` ("unknown"), so an open-set threshold can be
chosen on it. The test split is the full official test set, left-out classes labelled -1.
"""
import json
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmpretrain.datasets import BaseDataset

from .class_counts import labels_to_counts

IMB_TYPES = ('exp', 'step')
SPLITS = ('train', 'val', 'test')


def long_tailed_counts(n_max: int, num_classes: int, imb_factor: float,
                       imb_type: str = 'exp') -> List[int]:
    """Images kept per class: ``int(n_max * IR ** (-i / (C - 1)))`` (``exp``) or a step."""
    if imb_type not in IMB_TYPES:
        raise ValueError(f'imb_type={imb_type!r} is not a known imbalance profile; '
                         f'use one of {IMB_TYPES}.')
    if not imb_factor >= 1:
        raise ValueError(f'imb_factor={imb_factor} must be >= 1 (it is the imbalance ratio '
                         'n_max / n_min: 100 for CIFAR-10-LT IR100; 1 keeps data balanced).')
    if num_classes < 2:
        raise ValueError(f'num_classes={num_classes}: a long-tailed profile needs >= 2 classes')
    if imb_type == 'exp':
        return [int(n_max * imb_factor ** (-i / (num_classes - 1))) for i in range(num_classes)]
    half = num_classes // 2
    return [n_max] * half + [int(n_max / imb_factor)] * (num_classes - half)


def draw_long_tailed_split(labels: np.ndarray, counts: Sequence[int], seed: int = 0,
                           val_per_class: int = 0, holdout_val: bool = False
                           ) -> Dict[str, np.ndarray]:
    """Indices of the long-tailed train split and the balanced validation split.

    Returns a dict with ``train``, ``val`` (sorted by class, then shuffle order) and
    ``val_overlap`` (validation indices that are also training indices).
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    train, val, overlap = [], [], []
    for cls, keep in enumerate(counts):
        idx = np.where(labels == cls)[0]
        if keep > len(idx):
            raise ValueError(f'the profile keeps {keep} images of class {cls} but the data '
                             f'has only {len(idx)}; lower n_max.')
        rng.shuffle(idx)
        kept, discarded = idx[:keep], idx[keep:]
        val_c = discarded[:val_per_class]
        missing = val_per_class - len(val_c)
        if missing > 0:
            if missing >= keep:
                raise ValueError(f'class {cls} has too few images for val_per_class='
                                 f'{val_per_class} plus its {keep} training images.')
            borrowed = kept[keep - missing:]
            val_c = np.concatenate([val_c, borrowed])
            if holdout_val:
                kept = kept[:keep - missing]
            else:
                overlap.append(borrowed)
        train.append(kept)
        val.append(val_c)
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    return dict(train=cat(train), val=cat(val), val_overlap=cat(overlap))


class LongTailedDataset(BaseDataset):
    """Base of the in-memory long-tailed datasets of this package.

    Subclasses implement :meth:`_load_source`, returning the full balanced training arrays
    and the test arrays plus a per-image key for split files. The split drawn here is
    recorded in ``self.split_indices`` and can be exported with :meth:`export_split` and
    loaded back with ``split_file=``.

    Args:
        data_root: folder holding the dataset files.
        split: ``'train'`` (long-tailed), ``'val'`` (balanced, from discarded images) or
            ``'test'`` (the official balanced test set).
        imb_type: ``'exp'`` or ``'step'``.
        imb_factor: imbalance ratio ``IR = n_max / n_min`` (>= 1).
        n_max: images of the largest class; ``None`` takes the dataset's default.
        seed: seed of the per-class shuffle (LDAM uses 0).
        val_per_class: images per class in the validation split.
        holdout_val: remove validation images from the training split where the profile
            kept too few discarded images (changes the standard counts).
        split_file: JSON written by :meth:`export_split`; when given, the split is read
            from it instead of drawn.
        known_classes: open split: ``None`` (closed set, default), the number ``K`` of known
            classes, or their original label indices. Left-out classes are labelled -1 in
            the val / test splits (see the module docstring).
        known_seed: with ``known_classes=K``, draw the known classes with this seed instead
            of taking the first ``K``. Defaults to None.
        **kwargs: passed to MMPretrain's ``BaseDataset`` (``pipeline``, ``test_mode`` ...).
    """

    DEFAULT_N_MAX: int = 0
    DEFAULT_VAL_PER_CLASS: int = 0
    SPLIT_KEY: str = 'index'  # what a split file lists: 'index' or 'filename'

    def __init__(self, data_root: str = '', split: str = 'train', imb_type: str = 'exp',
                 imb_factor: float = 100, n_max: Optional[int] = None, seed: int = 0,
                 val_per_class: Optional[int] = None, holdout_val: bool = False,
                 split_file: Optional[str] = None,
                 known_classes: Optional[Union[int, Sequence[int]]] = None,
                 known_seed: Optional[int] = None, **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'split={split!r}: use one of {SPLITS}.')
        self.split = split
        self.imb_type = imb_type
        self.imb_factor = imb_factor
        self.n_max = self.DEFAULT_N_MAX if n_max is None else n_max
        self.seed = seed
        self.val_per_class = (self.DEFAULT_VAL_PER_CLASS if val_per_class is None
                              else val_per_class)
        self.holdout_val = holdout_val
        self.split_file = split_file
        self.split_indices: Dict[str, np.ndarray] = {}
        all_classes = tuple(self.METAINFO['classes'])
        self.known_classes = resolve_known_classes(known_classes, len(all_classes),
                                                   known_seed, type(self).__name__)
        self.known_seed = known_seed
        if self.known_classes is not None:
            if split_file is not None:
                raise ValueError(f'{type(self).__name__}: split_file and known_classes cannot '
                                 'be combined (split files record closed-set splits only).')
            meta = dict(kwargs.pop('metainfo', None) or {})
            meta['classes'] = tuple(all_classes[c] for c in self.known_classes)
            kwargs['metainfo'] = meta
        # validate the profile before any file is read
        self.profile_counts = long_tailed_counts(self.n_max, self.num_classes,
                                                 imb_factor, imb_type)
        kwargs.setdefault('test_mode', split == 'test')
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    # -- subclasses -----------------------------------------------------------
    def _load_source(self, split: str):
        """Return ``(images, labels, keys)`` of the source's ``'train'`` or ``'test'`` set.

        ``images`` is a uint8 array (N, H, W[, C]); ``keys`` identifies each image in a split
        file (file names where the format has them, else ``None`` for positional indices).
        """
        raise NotImplementedError

    # -- split logic ------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Classes the model sees: the known classes of an open split, else all."""
        if getattr(self, 'known_classes', None) is not None:
            return len(self.known_classes)
        return len(self.METAINFO['classes'])

    def _draw(self, labels: np.ndarray, keys) -> Dict[str, np.ndarray]:
        if self.split_file is not None:
            return self._read_split_file(keys)
        drawn = draw_long_tailed_split(labels, self.profile_counts, self.seed,
                                       self.val_per_class, self.holdout_val)
        if self.split == 'val' and len(drawn['val_overlap']):
            classes = sorted(set(labels[drawn['val_overlap']].tolist()))
            warnings.warn(
                f'{type(self).__name__}: the profile keeps classes {classes} (almost) whole, so '
                f'{len(drawn["val_overlap"])} of their validation images are also training '
                'images. Pass holdout_val=True to remove them from training.')
        return drawn

    def load_data_list(self) -> List[dict]:
        source_split = 'test' if self.split == 'test' else 'train'
        images, labels, keys = self._load_source(source_split)
        labels = np.asarray(labels, dtype=np.int64)
        labels_to_counts(labels, len(self.METAINFO['classes']),
                         f'{type(self).__name__} ({source_split})')
        if self.known_classes is not None:
            return self._load_open(images, labels, keys)
        if self.split == 'test':
            indices = np.arange(len(labels))
        else:
            self.split_indices = self._draw(labels, keys)
            indices = self.split_indices[self.split]
        self._keys = keys
        return [dict(img=images[i], gt_label=int(labels[i])) for i in indices]

    def _load_open(self, images: np.ndarray, labels: np.ndarray, keys) -> List[dict]:
        """The open split: known classes relabelled 0..K-1, left-out classes -1."""
        remap = np.full(len(self.METAINFO['classes']), -1, dtype=np.int64)
        remap[self.known_classes] = np.arange(len(self.known_classes))
        mapped = remap[labels]
        if self.split == 'test':
            indices = np.arange(len(labels))
        else:
            drawn = draw_long_tailed_split(mapped, self.profile_counts, self.seed,
                                           self.val_per_class, self.holdout_val)
            if self.split == 'val' and len(drawn['val_overlap']):
                warnings.warn(f'{type(self).__name__}: {len(drawn["val_overlap"])} validation '
                              'images of known classes are also training images. Pass '
                              'holdout_val=True to remove them from training.')
            rng = np.random.RandomState(self.seed + 1)
            unknown_val = []
            for cls in np.where(remap < 0)[0]:
                idx = np.where(labels == cls)[0]
                rng.shuffle(idx)
                unknown_val.append(idx[:self.val_per_class])
            drawn['val'] = np.concatenate([drawn['val']] + unknown_val).astype(np.int64)
            self.split_indices = drawn
            indices = drawn[self.split]
        self._keys = keys
        return [dict(img=images[i], gt_label=int(mapped[i])) for i in indices]

    @property
    def class_counts(self) -> np.ndarray:
        """Per-class number of images in this split (``N_c`` for the training split);
        unknown (-1) samples of an open split are not counted."""
        labels = np.asarray(self.get_gt_labels(), dtype=np.int64)
        if self.known_classes is not None:
            labels = labels[labels >= 0]
        return labels_to_counts(labels, self.num_classes, type(self).__name__)

    def _source_identity(self) -> dict:
        """Arguments that decide which images form the source pool a split file indexes."""
        return {}

    def export_split(self, path: str) -> None:
        """Write the drawn train / val split to JSON (file names or source indices)."""
        if self.known_classes is not None:
            raise RuntimeError('export_split() records closed-set splits only; an open split '
                               'is rebuilt from known_classes / known_seed / seed.')
        if not self.split_indices:
            raise RuntimeError('export_split() needs a train or val split (the test split is '
                               'the fixed official set).')

        def as_keys(indices):
            if self._keys is None:
                return [int(i) for i in indices]
            return [str(self._keys[i]) for i in indices]

        record = dict(dataset=type(self).__name__, key='filename' if self._keys is not None
                      else 'index', imb_type=self.imb_type, imb_factor=self.imb_factor,
                      n_max=self.n_max, seed=self.seed, val_per_class=self.val_per_class,
                      source=self._source_identity(),
                      train=as_keys(self.split_indices['train']),
                      val=as_keys(self.split_indices['val']))
        with open(path, 'w') as f:
            json.dump(record, f)

    def _read_split_file(self, keys) -> Dict[str, np.ndarray]:
        if not osp.isfile(self.split_file):
            raise FileNotFoundError(f'split_file={self.split_file!r} does not exist; write one '
                                    'with dataset.export_split(path).')
        with open(self.split_file) as f:
            record = json.load(f)
        if record.get('dataset') != type(self).__name__:
            raise ValueError(f'split_file={self.split_file!r} was written for '
                             f'{record.get("dataset")}, not {type(self).__name__}.')
        if record.get('source', {}) != self._source_identity():
            raise ValueError(
                f'split_file={self.split_file!r} indexes a source pool built with '
                f'{record.get("source", {})}, but this dataset has {self._source_identity()}; '
                'pass the same arguments or export the split again.')
        if record['key'] == 'index':
            lookup = None
        else:
            if keys is None:
                raise ValueError(f'split_file lists file names but {type(self).__name__} '
                                 'files have none.')
            lookup = {str(k): i for i, k in enumerate(keys)}

        def resolve(entries):
            if lookup is None:
                return np.asarray(entries, dtype=np.int64)
            missing = [e for e in entries if e not in lookup]
            if missing:
                raise ValueError(f'split_file={self.split_file!r}: {len(missing)} images are '
                                 f'not in {self.data_root} (e.g. {missing[:3]}).')
            return np.asarray([lookup[e] for e in entries], dtype=np.int64)

        return dict(train=resolve(record['train']), val=resolve(record['val']),
                    val_overlap=np.zeros(0, np.int64))


def resolve_known_classes(known_classes: Optional[Union[int, Sequence[int]]],
                          num_classes: int, known_seed: Optional[int] = None,
                          source: str = 'dataset') -> Optional[np.ndarray]:
    """Sorted original indices of the known classes of an open split (None: closed set).

    ``known_classes=K``: the first ``K`` classes, or with ``known_seed`` the first ``K`` of
    ``np.random.RandomState(known_seed).permutation(num_classes)``; a sequence lists them.
    """
    if known_classes is None:
        if known_seed is not None:
            raise ValueError(f'{source}: known_seed={known_seed} needs known_classes=K.')
        return None
    if isinstance(known_classes, (int, np.integer)):
        k = int(known_classes)
        if not 2 <= k < num_classes:
            raise ValueError(f'{source}: known_classes={k} must be in [2, {num_classes}) '
                             '(at least one class must be left out as unknown).')
        if known_seed is None:
            return np.arange(k, dtype=np.int64)
        perm = np.random.RandomState(known_seed).permutation(num_classes)
        return np.sort(perm[:k]).astype(np.int64)
    if known_seed is not None:
        raise ValueError(f'{source}: known_seed only applies to known_classes=K, not a list.')
    known = np.asarray(list(known_classes), dtype=np.int64).reshape(-1)
    if (known.size < 2 or len(set(known.tolist())) != known.size or known.min() < 0
            or known.max() >= num_classes or known.size >= num_classes):
        raise ValueError(f'{source}: known_classes={known.tolist()} must be >= 2 distinct '
                         f'labels in [0, {num_classes}) leaving at least one class out.')
    return np.sort(known)


def require_files(data_root: str, names: Sequence[str], dataset: str, hint: str) -> None:
    """Raise a FileNotFoundError naming every missing file under ``data_root``."""
    missing = [n for n in names if not osp.isfile(osp.join(data_root, n))]
    if missing:
        raise FileNotFoundError(
            f'{dataset}: data_root={data_root!r} lacks {missing}. {hint}')
