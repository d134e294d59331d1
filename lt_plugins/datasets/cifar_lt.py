"""Long-tailed CIFAR-10 / CIFAR-100 (LDAM protocol) from the standard python-version files."""
import hashlib
import os.path as osp
import pickle
from typing import List, Tuple

import numpy as np
from mmpretrain.datasets.categories import CIFAR10_CATEGORIES, CIFAR100_CATEGORIES
from mmpretrain.registry import DATASETS

from .long_tailed import LongTailedDataset, require_files


def _md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


@DATASETS.register_module()
class CIFAR10LT(LongTailedDataset):
    """CIFAR-10-LT: the LDAM long-tailed subset of CIFAR-10's training set.

    Protocol (Cao et al. 2019; copied by RIDE, MiSLAS, BagofTricks-LT): class ``i`` keeps
    ``int(5000 * IR ** (-i / 9))`` training images, chosen by shuffling each class's indices
    with ``np.random.RandomState(seed=0)`` in label order and keeping the first ``n_i``.
    IR 100 keeps 12,406 images (5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50). The test
    split is the official balanced 10,000-image test batch; the validation split takes
    ``val_per_class`` (default 100) discarded training images per class
    (see :mod:`lt_plugins.datasets.long_tailed`).

    ``data_root`` is the ``cifar-10-batches-py`` folder (``data_batch_1..5``,
    ``test_batch``, ``batches.meta``) or its parent, as for MMPretrain's ``CIFAR10``. Their md5 sums are checked (``verify_md5=True``);
    a losslessly rebuilt copy whose image order differs has other sums: pass
    ``verify_md5=False``. The drawn subset then is a valid long-tailed split but not
    byte-identical to the one drawn from the official archive; split files list file names,
    so ``export_split`` / ``split_file`` carry a split between copies.
    """

    METAINFO = {'classes': CIFAR10_CATEGORIES}
    DEFAULT_N_MAX = 5000
    DEFAULT_VAL_PER_CLASS = 100
    SPLIT_KEY = 'filename'
    TRAIN_FILES = [('data_batch_1', 'c99cafc152244af753f735de768cd75f'),
                   ('data_batch_2', 'd4bba439e000b95fd0a9bffe97cbabec'),
                   ('data_batch_3', '54ebc095f3ab1f0389bbae665268c751'),
                   ('data_batch_4', '634d18415352ddfa80567beed471001a'),
                   ('data_batch_5', '482c414d41f54cd18b22e5b47cb7c3cb')]
    TEST_FILES = [('test_batch', '40351d587109b95175f43aff81a1287e')]
    LABEL_KEY = 'labels'
    BASE_FOLDER = 'cifar-10-batches-py'
    DOWNLOAD_HINT = ('Download the "CIFAR-10 python version" archive and extract it; pass its '
                     '`cifar-10-batches-py` folder as data_root.')

    def __init__(self, data_root: str = '', split: str = 'train', verify_md5: bool = True,
                 **kwargs) -> None:
        self.verify_md5 = verify_md5
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _load_source(self, split: str) -> Tuple[np.ndarray, List[int], List[str]]:
        files = self.TRAIN_FILES if split == 'train' else self.TEST_FILES
        root = self.data_root
        if not osp.isfile(osp.join(root, files[0][0])) and \
                osp.isfile(osp.join(root, self.BASE_FOLDER, files[0][0])):
            root = osp.join(root, self.BASE_FOLDER)  # MMPretrain's CIFAR layout
        require_files(root, [name for name, _ in files], type(self).__name__,
                      self.DOWNLOAD_HINT)
        images, labels, names = [], [], []
        for name, md5 in files:
            path = osp.join(root, name)
            if self.verify_md5 and _md5(path) != md5:
                raise ValueError(
                    f'{type(self).__name__}: md5 of {path} differs from the official archive. '
                    'For a rebuilt copy of the files pass verify_md5=False.')
            with open(path, 'rb') as f:
                entry = pickle.load(f, encoding='latin1')
            images.append(np.asarray(entry['data'], dtype=np.uint8))
            labels.extend(int(x) for x in entry[self.LABEL_KEY])
            names.extend(entry['filenames'])
        # (N, 3072) in R, G, B planes -> (N, 32, 32, 3) HWC, the layout MMPretrain expects.
        images = np.concatenate(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), labels, names


@DATASETS.register_module()
class CIFAR100LT(CIFAR10LT):
    """CIFAR-100-LT: the LDAM long-tailed subset of CIFAR-100's training set.

    Same protocol as :class:`CIFAR10LT` with ``n_max = 500`` and 100 fine labels:
    ``int(500 * IR ** (-i / 99))`` images for class ``i`` (IR 100: 10,847 images, 35 many /
    35 medium / 30 few-shot classes). ``data_root`` is the ``cifar-100-python`` folder
    (``train``, ``test``, ``meta``); validation takes 20 discarded images per class.
    """

    METAINFO = {'classes': CIFAR100_CATEGORIES}
    DEFAULT_N_MAX = 500
    DEFAULT_VAL_PER_CLASS = 20
    TRAIN_FILES = [('train', '16019d7e3df5f24257cddd939b257f8d')]
    TEST_FILES = [('test', 'f0ef6b0ae62326f3e7ffdfab6717acfc')]
    LABEL_KEY = 'fine_labels'
    BASE_FOLDER = 'cifar-100-python'
    DOWNLOAD_HINT = ('Download the "CIFAR-100 python version" archive and extract it; pass its '
                     '`cifar-100-python` folder as data_root.')
