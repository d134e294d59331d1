"""Person re-ID datasets in the Market-1501 / DukeMTMC-reID layout, with long-tailed editions."""
import os
import os.path as osp
import re
from typing import List, Optional, Sequence

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

SPLIT_DIRS = dict(train=('bounding_box_train', ), query=('query', ),
                  gallery=('bounding_box_test', ), test=('query', 'bounding_box_test'))
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')
# Market-1501: 0002_c1s1_000451_03.jpg ; DukeMTMC-reID: 0001_c2_f0046182.jpg ; junk: -1_c1s1_...
_NAME = re.compile(r'^(-?\d+)_c(\d+)')


def parse_reid_name(filename: str):
    """``(person id, camera id 0-based)`` from a Market/Duke file name, or None."""
    m = _NAME.match(osp.basename(filename))
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)) - 1


@DATASETS.register_module()
class ReIDDataset(BaseDataset):
    """Market-1501 / DukeMTMC-reID directory layout, optionally long-tailed (MBJ Sec. 4.1).

    ``data_root`` holds ``bounding_box_train/``, ``query/`` and ``bounding_box_test/``; person
    and camera ids are parsed from the file names. Standard protocol:

    * junk images (person id ``-1``) are dropped everywhere: the protocol ignores them in every
      ranking, which is the same as not having them; distractors (id ``0``) stay in the
      gallery as negatives for every query;
    * training ids are relabelled ``0..C-1`` in sorted id order (``gt_label``); query and
      gallery keep the raw id in ``pid`` (and ``gt_label``), ``camid`` is 0-based;
    * same-id same-camera gallery images are excluded per query by ``ReIDMetric``.

    Splits: ``'train'``, ``'query'``, ``'gallery'`` and ``'test'`` (query followed by
    gallery, with ``is_query``; the split to evaluate with ``ReIDMetric``). Every sample
    carries ``pid``, ``camid`` and ``is_query``: add them to ``PackInputs(meta_keys=...)``.

    Long-tailed edition (``num_head_ids=H``, train split only; Feature Cloud / MBJ protocol):
    ``H`` head identities keep all their images, every other identity is cut to
    ``tail_images`` (5) images; which identities are head (``head_selection='random'``, or
    ``'largest'`` by image count) and which tail images are kept is drawn from
    ``np.random.RandomState(seed)``. All ``C`` identities stay in the label space.

    Args:
        data_root (str): dataset folder.
        split (str): ``'train'``, ``'query'``, ``'gallery'`` or ``'test'``.
        num_head_ids (int, optional): ``H`` of the long-tailed edition (20 / 50 / 100).
        tail_images (int): images kept per tail identity. Defaults to 5.
        head_selection (str): ``'random'`` (default) or ``'largest'``.
        seed (int): seed of the long-tailed draw. Defaults to 0.
        **kwargs: passed to :class:`mmpretrain.datasets.BaseDataset` (``pipeline``, ...).
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 num_head_ids: Optional[int] = None,
                 tail_images: int = 5,
                 head_selection: str = 'random',
                 seed: int = 0,
                 pipeline: Sequence = (),
                 test_mode: Optional[bool] = None,
                 **kwargs) -> None:
        if split not in SPLIT_DIRS:
            raise ValueError(f'ReIDDataset: split={split!r}, choose one of {tuple(SPLIT_DIRS)}.')
        if num_head_ids is not None and split != 'train':
            raise ValueError('ReIDDataset: `num_head_ids` (long-tailed edition) applies to the '
                             'train split only; drop it from the query/gallery configs.')
        if head_selection not in ('random', 'largest'):
            raise ValueError(f'ReIDDataset: head_selection={head_selection!r}, choose '
                             '\'random\' or \'largest\'.')
        if tail_images < 1:
            raise ValueError(f'ReIDDataset: tail_images must be >= 1, got {tail_images}.')
        self.split = split
        self.num_head_ids = num_head_ids
        self.tail_images = int(tail_images)
        self.head_selection = head_selection
        self.seed = int(seed)
        if test_mode is None:
            test_mode = split != 'train'
        super().__init__(ann_file='', data_root=data_root, pipeline=pipeline,
                         test_mode=test_mode, **kwargs)

    # -- loading ----------------------------------------------------------------------------
    def _scan(self, sub: str) -> List[tuple]:
        folder = osp.join(self.data_root, sub)
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'ReIDDataset: {folder} not found; `data_root` must contain '
                'bounding_box_train/, query/ and bounding_box_test/ (Market-1501 / '
                'DukeMTMC-reID layout).')
        out = []
        for name in sorted(os.listdir(folder)):
            if not name.lower().endswith(IMG_EXTENSIONS):
                continue
            parsed = parse_reid_name(name)
            if parsed is None:
                raise ValueError(f'ReIDDataset: cannot parse person/camera id from {name!r} '
                                 '(expected e.g. 0002_c1s1_000451_03.jpg).')
            pid, camid = parsed
            if pid == -1:  # junk
                continue
            out.append((osp.join(folder, name), pid, camid))
        return out

    def load_data_list(self) -> List[dict]:
        if self.split == 'train':
            return self._load_train()
        data_list = []
        for sub in SPLIT_DIRS[self.split]:
            is_query = sub == 'query'
            for path, pid, camid in self._scan(sub):
                data_list.append(dict(img_path=path, gt_label=pid, pid=pid, camid=camid,
                                      is_query=is_query))
        return data_list

    def _load_train(self) -> List[dict]:
        items = [it for it in self._scan('bounding_box_train') if it[1] != 0]
        pids = sorted({pid for _, pid, _ in items})
        relabel = {pid: i for i, pid in enumerate(pids)}
        labels = np.array([relabel[pid] for _, pid, _ in items], dtype=np.int64)
        keep = np.arange(len(items))
        if self.num_head_ids is not None:
            keep = self._long_tailed_indices(labels, len(pids))
        self._metainfo['classes'] = tuple(f'{pid:04d}' for pid in pids)
        return [dict(img_path=items[i][0], gt_label=int(labels[i]), pid=items[i][1],
                     camid=items[i][2], is_query=False) for i in keep]

    def _long_tailed_indices(self, labels: np.ndarray, num_ids: int) -> np.ndarray:
        H = int(self.num_head_ids)
        if not 1 <= H <= num_ids:
            raise ValueError(f'ReIDDataset: num_head_ids={H} but the training set has {num_ids} '
                             'identities; use 20, 50 or 100 (at most the identity count).')
        rng = np.random.RandomState(self.seed)
        counts = np.bincount(labels, minlength=num_ids)
        if self.head_selection == 'random':
            head = rng.permutation(num_ids)[:H]
        else:
            head = np.argsort(-counts, kind='stable')[:H]
        is_head = np.zeros(num_ids, dtype=bool)
        is_head[head] = True
        keep = []
        for c in range(num_ids):  # split construction, once per dataset (not a training step)
            idx = np.flatnonzero(labels == c)
            if not is_head[c] and len(idx) > self.tail_images:
                idx = np.sort(rng.choice(idx, self.tail_images, replace=False))
            keep.append(idx)
        return np.sort(np.concatenate(keep))

    # -- class counts -----------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        if self.split == 'train':
            return len(self._metainfo['classes'])
        return int(self.get_gt_labels().max()) + 1 if len(self) else 0

    @property
    def class_counts(self) -> np.ndarray:
        """Training images per identity ``N_c`` (read by ``get_class_counts``)."""
        return np.bincount(self.get_gt_labels().astype(np.int64), minlength=self.num_classes)
