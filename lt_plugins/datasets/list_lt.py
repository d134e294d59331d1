"""ImageNet-LT, Places-LT and iNaturalist 2018 from the standard ``path label`` list files."""
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import mmcv
import numpy as np
from mmengine.fileio import LocalBackend, exists, get_file_backend, list_from_file
from mmengine.logging import MMLogger
from mmpretrain.datasets import CustomDataset
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from mmpretrain.registry import DATASETS

__all__ = ['ImageNetLT', 'PlacesLT', 'INaturalist2018']

#: ``(list file, line)`` of bad entries already logged in this process (each is logged once,
#: however often the dataset is built)
_LOGGED_BAD: Set[Tuple[str, int]] = set()
CHECK_FILES = (True, False, 'exists', 'decode')


def _decode_settings(pipeline) -> dict:
    """``imdecode_backend`` / ``color_type`` / ``backend_args`` of the pipeline's image loader
    (cv2 defaults when it has none), so the build-time check decodes as the loader will."""
    for transform in getattr(pipeline, 'transforms', []):
        if hasattr(transform, 'imdecode_backend') and hasattr(transform, 'color_type'):
            return dict(backend=transform.imdecode_backend, flag=transform.color_type,
                        backend_args=getattr(transform, 'backend_args', None))
    return dict(backend='cv2', flag='color', backend_args=None)


def image_problem(path: str, decode: bool, settings: Optional[dict] = None) -> Optional[str]:
    """Why the image at ``path`` cannot be used (``'missing'`` or ``'corrupt (...)'``), or
    None. ``decode=False`` checks existence only; ``decode=True`` also decodes it as
    ``LoadImageFromFile`` does (``settings`` from :func:`_decode_settings`)."""
    settings = settings or dict(backend='cv2', flag='color', backend_args=None)
    backend = get_file_backend(path, backend_args=settings['backend_args'],
                               enable_singleton=True)
    found = (osp.isfile(path) if isinstance(backend, LocalBackend)
             else backend.exists(path))
    if not found:
        return 'missing'
    if not decode:
        return None
    try:
        img = mmcv.imfrombytes(backend.get(path), flag=settings['flag'],
                               backend=settings['backend'])
    except Exception as exc:  # noqa: B902  (any decoder failure marks the file corrupt)
        return f'corrupt ({type(exc).__name__}: {exc})'
    if img is None or img.size == 0:
        return 'corrupt (the decoder returned no image)'
    return None


class _ListLTDataset(CustomDataset):
    """A long-tailed benchmark read from ``<image path> <label>`` list files.

    Each line of the list names an image, relative to ``data_prefix`` (default: the
    ``data_root``), and its integer label in ``[0, num_classes)``. The list of a split is
    ``LIST_FILES[split]`` under ``data_root`` unless ``ann_file`` is given. Labels outside
    ``[0, num_classes)`` and malformed lines are refused with the file and line number.

    Open-set testing (OLTR's ImageNet-LT-open / Places-LT-open protocol: the test list plus
    images of classes never seen in training): ``open_ann_file`` names a second list of such
    images, appended after the main one, every image labelled ``-1`` ("unknown"); its lines
    are ``<image path>`` or ``<image path> -1`` (OLTR's ``*_open.txt`` lists). Alternatively
    ``allow_unknown=True`` accepts label ``-1`` in the main list (a ready-made combined list).
    ``class_counts`` counts known labels only. Evaluate with ``OpenSetShotAccuracy``.

    Bad entries: a label outside the class range, a missing image file and a corrupt image
    each raise an error naming the list file, the line and the image path. Existence is
    checked when the dataset is built (``check_files=True``; a stat per image, threads for
    remote backends), not hours later when a loader reaches the line; ``check_files='decode'``
    also decodes every image there (as the pipeline's ``LoadImageFromFile`` would: slow on
    large sets), ``False`` checks nothing up front (very large sets). An image that fails in
    the pipeline later still raises with its list file and line. ``skip_bad_images=True``
    drops such entries instead (decoding them at build time unless ``check_files`` says
    otherwise), logs each once with its line, reports the count, and the class counts the
    samplers and losses read (``class_counts``) are those of the kept images (logged).

    Args:
        data_root (str): folder holding the list files (and, by default, the images).
        split (str): one of ``SPLITS``. Defaults to ``'train'``.
        ann_file (str, optional): list file overriding the standard name (relative paths
            are joined with ``data_root``). Defaults to None.
        num_classes (int, optional): number of classes; defaults to the protocol's.
        data_prefix (str | dict): image folder relative to ``data_root`` (or absolute).
            Defaults to ``''`` (the ``data_root``).
        classes (Sequence[str], optional): class names; defaults to the ImageNet synsets
            for ImageNet-LT and to ``'0', '1', ...`` otherwise.
        open_ann_file (str, optional): list of unknown-class images (label -1), relative to
            ``data_root`` unless absolute. Defaults to None.
        allow_unknown (bool): accept label -1 in the main list. Defaults to False.
        check_files (bool | str, optional): build-time check of the listed images: ``True``
            or ``'exists'`` (they exist), ``'decode'`` (they exist and decode), ``False``
            (none). Defaults to None: ``'decode'`` with ``skip_bad_images``, else ``True``.
        skip_bad_images (bool): skip entries with a missing or corrupt image or a label
            outside the class range (logged) instead of raising. Defaults to False.
        check_workers (int): threads of the build-time check. Defaults to 8.
        **kwargs: other arguments of MMPretrain's ``CustomDataset`` / ``BaseDataset``
            (``pipeline``, ``test_mode`` — default ``split != 'train'``, ``indices``, ...).
    """

    NAME: str = ''
    LIST_FILES: Dict[str, str] = {}
    NUM_CLASSES: int = 0
    #: sizes of the standard lists, to warn about a non-standard copy
    SPLIT_SIZES: Dict[str, int] = {}
    DEFAULT_CLASSES: Optional[Sequence[str]] = None

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 ann_file: Optional[str] = None,
                 num_classes: Optional[int] = None,
                 data_prefix: Union[str, dict] = '',
                 classes: Optional[Sequence[str]] = None,
                 open_ann_file: Optional[str] = None,
                 allow_unknown: bool = False,
                 check_files: Union[bool, str, None] = None,
                 skip_bad_images: bool = False,
                 check_workers: int = 8,
                 **kwargs) -> None:
        name = type(self).__name__
        if check_files is None:
            check_files = 'decode' if skip_bad_images else True
        if check_files not in CHECK_FILES:
            raise ValueError(f"{name}: `check_files` must be True / 'exists' (the images "
                             "exist), 'decode' (they exist and decode) or False (no check), "
                             f'got {check_files!r}.')
        if skip_bad_images and check_files is False:
            raise ValueError(f'{name}: `skip_bad_images=True` needs the build-time check to '
                             "find the bad images: set `check_files='decode'` (or True for "
                             'missing files only), or drop `skip_bad_images`.')
        self.check_files = 'exists' if check_files is True else check_files
        self.skip_bad_images = bool(skip_bad_images)
        self.check_workers = max(1, int(check_workers))
        self.bad_entries: List[dict] = []
        if split not in self.LIST_FILES:
            raise ValueError(f'{type(self).__name__}: `split` must be one of '
                             f'{sorted(self.LIST_FILES)}, got {split!r}.')
        self.split = split
        self.num_classes = int(num_classes or self.NUM_CLASSES)
        if self.num_classes <= 0:
            raise ValueError(f'{type(self).__name__}: `num_classes` must be positive.')
        self._standard_list = ann_file is None
        self.allow_unknown = bool(allow_unknown)
        self.open_ann_file = open_ann_file
        if open_ann_file is not None and not osp.isabs(open_ann_file) and data_root:
            self.open_ann_file = osp.join(data_root, open_ann_file)
        if ann_file is None:
            ann_file = self.LIST_FILES[split]
        if classes is None and 'classes' not in (kwargs.get('metainfo') or {}):
            default = self.DEFAULT_CLASSES
            classes = (tuple(default) if default is not None and
                       len(default) == self.num_classes else
                       tuple(str(i) for i in range(self.num_classes)))
        kwargs.setdefault('test_mode', split != 'train')
        self._gt_labels: Optional[np.ndarray] = None
        super().__init__(data_root=data_root, data_prefix=data_prefix, ann_file=ann_file,
                         with_label=True, classes=classes, **kwargs)
        if len(self.CLASSES) != self.num_classes:
            raise ValueError(f'{type(self).__name__}: {len(self.CLASSES)} class names for '
                             f'num_classes={self.num_classes}.')

    def load_data_list(self) -> List[dict]:
        """Parse the list file(s), refusing malformed lines and out-of-range labels."""
        path = self.ann_file
        if not exists(path):
            raise FileNotFoundError(
                f'{type(self).__name__} (split={self.split!r}): list file {path} not found. '
                f'Expected the standard {self.NAME} list '
                f'{osp.basename(self.LIST_FILES[self.split])!r} under data_root '
                f'({self.data_root!r}); set `data_root` to the folder that holds it or '
                '`ann_file` to its path.')
        data_list, labels = self._parse_list(path, unknown_ok=self.allow_unknown)
        expected = self.SPLIT_SIZES.get(self.split)
        if self._standard_list and expected and len(data_list) != expected:
            MMLogger.get_current_instance().warning(
                f'{type(self).__name__}: {path} lists {len(data_list)} images; the standard '
                f'{self.NAME} {self.split} list has {expected}.')
        if self.open_ann_file is not None:
            if not exists(self.open_ann_file):
                raise FileNotFoundError(f'{type(self).__name__}: open_ann_file='
                                        f'{self.open_ann_file!r} not found.')
            open_list, open_labels = self._parse_list(self.open_ann_file, open_list=True)
            data_list += open_list
            labels += open_labels
        data_list, labels = self._check_images(data_list, labels)
        self._report_skipped(len(data_list), labels)
        self._loaded_labels = np.asarray(labels, dtype=np.int64)
        return data_list

    def _bad(self, path: str, lineno: int, img_path: str, problem: str) -> None:
        """Skip (logged once) or raise for one bad entry of list ``path``."""
        where = f'{path}:{lineno}'
        if not self.skip_bad_images:
            kind = problem.split(' ', 1)[0]
            hint = ('fix or remove the line, or set `skip_bad_images=True` to skip bad '
                    'entries')
            if kind == 'missing':
                raise FileNotFoundError(f'{where}: image {img_path} listed by '
                                        f'{type(self).__name__} not found; check `data_root` '
                                        f'/ `data_prefix` ({self.img_prefix!r}), {hint}.')
            raise ValueError(f'{where}: image {img_path} of {type(self).__name__} is '
                             f'{problem}; {hint}.')
        self.bad_entries.append(dict(list_file=path, line=lineno, img_path=img_path,
                                     problem=problem))
        if (path, lineno) not in _LOGGED_BAD:
            _LOGGED_BAD.add((path, lineno))
            MMLogger.get_current_instance().warning(
                f'{type(self).__name__}: skipped {where}: image {img_path} is {problem}.')

    def _check_images(self, data_list: List[dict], labels: List[int]):
        """Drop (or raise for) entries whose image is missing / does not decode."""
        if self.check_files is False or not data_list:
            return data_list, labels
        decode = self.check_files == 'decode'
        settings = _decode_settings(getattr(self, 'pipeline', None))
        paths = [info['img_path'] for info in data_list]
        local = isinstance(get_file_backend(paths[0], backend_args=settings['backend_args'],
                                            enable_singleton=True), LocalBackend)
        if local and not decode:  # a stat each: threads would only add overhead
            problems = [None if osp.isfile(p) else 'missing' for p in paths]
        else:
            workers = min(self.check_workers, len(paths))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                problems = list(pool.map(lambda p: image_problem(p, decode, settings), paths,
                                         chunksize=64))
        if not any(problems):
            return data_list, labels
        sources = self._list_sources
        kept, kept_labels = [], []
        for info, label, problem in zip(data_list, labels, problems):
            if problem is None:
                kept.append(info)
                kept_labels.append(label)
                continue
            self._bad(sources[info['list_file']], info['list_line'], info['img_path'],
                      problem)
        return kept, kept_labels

    def _report_skipped(self, num_kept: int, labels: List[int]) -> None:
        if not self.bad_entries:
            return
        kinds: Dict[str, int] = {}
        for entry in self.bad_entries:
            kind = entry['problem'].split(' ', 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        total = num_kept + len(self.bad_entries)
        detail = ', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))
        MMLogger.get_current_instance().warning(
            f'{type(self).__name__} (split={self.split!r}): skip_bad_images skipped '
            f'{len(self.bad_entries)} of {total} listed images ({detail}); the class counts '
            f'(class_counts, read by the samplers and losses) are recomputed on the {num_kept} '
            'kept images.')

    def _parse_list(self, path: str, unknown_ok: bool = False, open_list: bool = False):
        """``(data_list, labels)`` of one list file; ``open_list``: every label is -1."""
        backend = get_file_backend(self.img_prefix, enable_singleton=True)
        if not hasattr(self, '_list_sources') or not open_list:
            self._list_sources: List[str] = []
        self._list_sources.append(path)
        source = len(self._list_sources) - 1
        data_list, labels = [], []
        for lineno, line in enumerate(list_from_file(path), 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            if open_list:
                if len(parts) == 2 and parts[1].lstrip('-').isdigit():
                    if int(parts[1]) != -1:
                        raise ValueError(f'{path}:{lineno}: an open_ann_file lists unknown-'
                                         f'class images (label -1 or none), got {line!r}.')
                    name = parts[0]
                else:
                    name = line
                label = -1
            else:
                try:
                    label = int(parts[1]) if len(parts) == 2 else None
                except ValueError:
                    label = None
                if label is None:
                    raise ValueError(f'{path}:{lineno}: expected "<image path> <integer '
                                     f'label>", got {line!r}.')
                name = parts[0]
                if not (0 <= label < self.num_classes or (unknown_ok and label == -1)):
                    img_path = backend.join_path(self.img_prefix, name)
                    if self.skip_bad_images:
                        self._bad(path, lineno, img_path, f'labelled {label}, a label out of '
                                  f'range [0, num_classes={self.num_classes})')
                        continue
                    raise ValueError(
                        f'{path}:{lineno}: label {label} of image {img_path} is outside '
                        f'[0, num_classes={self.num_classes}) of {type(self).__name__}; fix '
                        'the list, set `num_classes` (label -1 marks an unknown-class image '
                        'only with `allow_unknown=True` or in `open_ann_file`) or set '
                        '`skip_bad_images=True`.')
            data_list.append(dict(img_path=backend.join_path(self.img_prefix, name),
                                  gt_label=label, list_file=source, list_line=lineno))
            labels.append(label)
        return data_list, labels

    def prepare_data(self, idx) -> Any:
        """The pipeline's output; an image that fails to load raises with its list line."""
        try:
            return super().prepare_data(idx)
        except Exception as exc:  # noqa: B902  (re-raised unchanged unless the image is bad)
            info = self.get_data_info(idx)
            sources = getattr(self, '_list_sources', [])
            if 'list_line' not in info or info.get('list_file', -1) >= len(sources):
                raise
            problem = image_problem(info['img_path'], True, _decode_settings(self.pipeline))
            if problem is None:
                raise
            where = f"{sources[info['list_file']]}:{info['list_line']}"
            error = (FileNotFoundError if problem == 'missing' else ValueError)(
                f"{where}: image {info['img_path']} of {type(self).__name__} is {problem} "
                f'(found by the data pipeline: {type(exc).__name__}: {exc}); fix or remove '
                "the line, or build with `skip_bad_images=True` (and `check_files='decode'`) "
                'to skip bad images.')
            raise error from exc

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        super().full_init()
        loaded = getattr(self, '_loaded_labels', None)
        if self._indices is None and loaded is not None and len(loaded) == len(self):
            self._gt_labels = loaded
        self._loaded_labels = None

    def get_subset_(self, indices) -> None:
        self._gt_labels = None
        super().get_subset_(indices)

    def get_gt_labels(self) -> np.ndarray:
        """Labels of all samples (int64), cached."""
        if not self._fully_initialized:
            self.full_init()
        if self._gt_labels is None or len(self._gt_labels) != len(self):
            self._gt_labels = np.asarray(super().get_gt_labels(), dtype=np.int64)
        return self._gt_labels

    @property
    def class_counts(self) -> np.ndarray:
        """Per-class number of images of this split (int64, length ``num_classes``);
        unknown-class images (label -1) are not counted."""
        labels = self.get_gt_labels()
        return np.bincount(labels[labels >= 0], minlength=self.num_classes).astype(np.int64)


@DATASETS.register_module()
class ImageNetLT(_ListLTDataset):
    """ImageNet-LT (Liu et al., "Large-Scale Long-Tailed Recognition in an Open World",
    CVPR 2019): a Pareto (alpha = 6) subset of ImageNet-2012.

    Protocol: 1000 classes; train 115,846 images, 1280 to 5 per class
    (``ImageNet_LT_train.txt``); val 20,000 (20 per class, ``ImageNet_LT_val.txt``) for
    tuning; test 50,000, the balanced ImageNet validation set (``ImageNet_LT_test.txt``).
    Paths in the lists are relative to the ImageNet root (``train/n01440764/...``), so
    ``data_root`` is usually that root with the lists copied into it, or set
    ``data_prefix``. Report many (> 100), medium (20-100) and few (< 20) shot accuracy
    with ``ShotAccuracy``. Args: see :class:`_ListLTDataset`.
    """

    NAME = 'ImageNet-LT'
    LIST_FILES = dict(train='ImageNet_LT_train.txt', val='ImageNet_LT_val.txt',
                      test='ImageNet_LT_test.txt')
    NUM_CLASSES = 1000
    SPLIT_SIZES = dict(train=115846, val=20000, test=50000)
    DEFAULT_CLASSES = IMAGENET_CATEGORIES


@DATASETS.register_module()
class PlacesLT(_ListLTDataset):
    """Places-LT (Liu et al., CVPR 2019): a long-tailed subset of Places-365-Standard.

    Protocol: 365 classes; train 62,500 images, 4980 to 5 per class
    (``Places_LT_train.txt``); val 7,300 (20 per class, ``Places_LT_val.txt``); test
    36,500 (100 per class, ``Places_LT_test.txt``) taken from the Places-365 validation set.
    Paths are relative to the Places-365 root. Args: see :class:`_ListLTDataset`.
    """

    NAME = 'Places-LT'
    LIST_FILES = dict(train='Places_LT_train.txt', val='Places_LT_val.txt',
                      test='Places_LT_test.txt')
    NUM_CLASSES = 365
    SPLIT_SIZES = dict(train=62500, val=7300, test=36500)


@DATASETS.register_module()
class INaturalist2018(_ListLTDataset):
    """iNaturalist 2018 (Van Horn et al., CVPR 2018), naturally long-tailed species.

    Protocol (as used by Decoupling, Kang et al. ICLR 2020, and later long-tail work):
    8,142 classes; train 437,513 images, 1000 to 2 per class
    (``iNaturalist18_train.txt``); the official validation set of 24,426 images (3 per
    class, ``iNaturalist18_val.txt``) is the test set, so ``split='test'`` reads the
    same list as ``split='val'``. Paths are relative to the iNaturalist root
    (``train_val2018/...``). Args: see :class:`_ListLTDataset`.
    """

    NAME = 'iNaturalist 2018'
    LIST_FILES = dict(train='iNaturalist18_train.txt', val='iNaturalist18_val.txt',
                      test='iNaturalist18_val.txt')
    NUM_CLASSES = 8142
    SPLIT_SIZES = dict(train=437513, val=24426, test=24426)
