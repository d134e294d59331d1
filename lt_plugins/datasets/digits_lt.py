"""DigitsLT: a long-tailed split of scikit-learn's bundled digits (no download)."""
from typing import Tuple

import numpy as np
from mmpretrain.registry import DATASETS

from .long_tailed import LongTailedDataset


@DATASETS.register_module()
class DigitsLT(LongTailedDataset):
    """DigitsLT: scikit-learn's 1,797 bundled 8x8 digits as a small long-tailed problem.

    The embedded default dataset: it ships inside scikit-learn, so a smoke run needs no data
    and trains in minutes on a laptop CPU. Protocol: per class, ``RandomState(split_seed)``
    shuffles the images and the first ``test_per_class`` (20) form the balanced test set;
    the rest is the training pool, to which the LDAM profile applies with ``n_max = 150`` and
    ``IR = 25``: 150, 104, 73, 51, 35, 25, 17, 12, 8, 6 images (481; 2 many / 4 medium /
    4 few-shot classes). Validation takes ``val_per_class`` (5) discarded pool images per class.
    Images are ``(8, 8, 1)`` uint8 (sklearn's 0..16 grey levels scaled by 16, clipped to 255).
    """

    METAINFO = {'classes': tuple(str(d) for d in range(10))}
    DEFAULT_N_MAX = 150
    DEFAULT_VAL_PER_CLASS = 5

    def __init__(self, data_root: str = '', split: str = 'train', imb_factor: float = 25,
                 test_per_class: int = 20, split_seed: int = 0, **kwargs) -> None:
        self.test_per_class = test_per_class
        self.split_seed = split_seed
        super().__init__(data_root=data_root, split=split, imb_factor=imb_factor, **kwargs)

    def _source_identity(self) -> dict:
        # The training pool (what split files index) depends on the test carve-out.
        return dict(split_seed=self.split_seed, test_per_class=self.test_per_class)

    def _load_source(self, split: str) -> Tuple[np.ndarray, np.ndarray, None]:
        from sklearn.datasets import load_digits
        digits = load_digits()
        images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)[..., None]
        labels = digits.target.astype(np.int64)
        rng = np.random.RandomState(self.split_seed)
        is_test = np.zeros(len(labels), dtype=bool)
        for cls in range(len(self.METAINFO['classes'])):
            idx = np.where(labels == cls)[0]
            rng.shuffle(idx)
            is_test[idx[:self.test_per_class]] = True
        keep = is_test if split == 'test' else ~is_test
        return images[keep], labels[keep], None
