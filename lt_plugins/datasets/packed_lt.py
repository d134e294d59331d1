"""PackedLT: a long-tailed train / val / test split packed into one compressed ``.npz`` file."""
import json
import os.path as osp
from typing import Dict, List, Optional

import numpy as np
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

from .class_counts import labels_to_counts

SPLITS = ('train', 'val', 'test')
_CACHE: Dict[str, Dict[str, np.ndarray]] = {}


def load_pack(path: str) -> Dict[str, np.ndarray]:
    """Arrays of a pack written by ``tools/benchmark/pack_dataset.py``, read once per process.

    Keys: ``{split}_img`` (uint8, N x H x W x C; stored as differences along W when the
    ``meta`` JSON says ``encoding='delta-w'``), ``{split}_lbl`` (int64) for each split,
    ``classes`` (str), ``meta`` (JSON string). The decompressed arrays stay in memory for every later dataset of the
    same file (the GPU mode runs many arms from one pack).
    """
    path = osp.abspath(osp.expanduser(path))
    if path not in _CACHE:
        if not osp.isfile(path):
            raise FileNotFoundError(f'PackedLT: `pack_file` {path} does not exist; write it '
                                    'with tools/benchmark/pack_dataset.py.')
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        missing = [f'{s}_{k}' for s in SPLITS for k in ('img', 'lbl')
                   if f'{s}_{k}' not in arrays] + [k for k in ('classes', ) if k not in arrays]
        if missing:
            raise ValueError(f'PackedLT: {path} lacks arrays {missing}; it was not written by '
                             'tools/benchmark/pack_dataset.py.')
        meta = json.loads(str(arrays['meta'])) if 'meta' in arrays else {}
        if meta.get('encoding') == 'delta-w':     # undo the pack's left-neighbour differences
            for split in SPLITS:
                arrays[f'{split}_img'] = np.cumsum(arrays[f'{split}_img'], axis=2,
                                                   dtype=np.uint8)
        elif meta.get('encoding', 'raw') != 'raw':
            raise ValueError(f'PackedLT: {path} has unknown image encoding '
                             f'{meta["encoding"]!r} (known: raw, delta-w)')
        _CACHE[path] = arrays
    return _CACHE[path]


@DATASETS.register_module()
class PackedLT(BaseDataset):
    """A long-tailed dataset held in memory, read from one compressed ``.npz`` pack.

    The pack holds the already drawn long-tailed training split, the balanced validation
    split and the test split of any long-tailed dataset of this package (written by
    ``tools/benchmark/pack_dataset.py``), so a machine without the source files (a GPU box
    reached through a small working-tree copy) trains on exactly the same images.

    Args:
        pack_file (str): path of the ``.npz`` pack (relative paths resolve against
            ``data_root``).
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        data_root (str): prefix of a relative ``pack_file``. Defaults to ''.
        **kwargs: ``pipeline``, ``indices``, ``test_mode`` ... of mmengine's BaseDataset.
    """

    def __init__(self, pack_file: str, split: str = 'train', data_root: str = '',
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'PackedLT: split={split!r}; use one of {SPLITS}.')
        self.split = split
        self.pack_file = pack_file if osp.isabs(pack_file) or not data_root else osp.join(
            data_root, pack_file)
        arrays = load_pack(self.pack_file)
        classes = tuple(str(c) for c in arrays['classes'])
        kwargs.setdefault('test_mode', split == 'test')
        metainfo = dict(kwargs.pop('metainfo', None) or {}, classes=classes)
        super().__init__(ann_file='', data_root=data_root, metainfo=metainfo, **kwargs)

    @property
    def num_classes(self) -> int:
        return len(self.metainfo['classes'])

    def load_data_list(self) -> List[dict]:
        arrays = load_pack(self.pack_file)
        images, labels = arrays[f'{self.split}_img'], arrays[f'{self.split}_lbl']
        labels_to_counts(labels, self.num_classes, f'PackedLT ({self.split})')
        return [dict(img=images[i], gt_label=int(labels[i])) for i in range(len(labels))]

    def get_gt_labels(self) -> np.ndarray:
        """Labels of every sample (int64), as MMPretrain datasets give them."""
        return np.array([self.get_data_info(i)['gt_label'] for i in range(len(self))],
                        dtype=np.int64)

    @property
    def class_counts(self) -> np.ndarray:
        """Per-class number of images of this split (``N_c`` for the training split)."""
        return labels_to_counts(self.get_gt_labels(), self.num_classes, 'PackedLT')

    @staticmethod
    def image_shape(pack_file: str) -> Optional[tuple]:
        """``(H, W, C)`` of the pack's images."""
        return tuple(load_pack(pack_file)['train_img'].shape[1:])
