"""Long-tailed Fashion-MNIST from the four standard gzipped IDX files."""
import gzip
import os.path as osp
from typing import Tuple

import numpy as np
from mmpretrain.registry import DATASETS

from .long_tailed import LongTailedDataset, require_files

FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')


def read_idx(path: str) -> np.ndarray:
    """Read a (gzipped) IDX file: big-endian magic ``0x0000 08 ndim`` then the sizes."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f'{path} is not an unsigned-byte IDX file (bad magic number).')
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype='>u4', count=ndim, offset=4).astype(np.int64)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f'{path}: header promises {tuple(dims)} values, file holds {data.size}.')
    return data.reshape(tuple(dims))


@DATASETS.register_module()
class FashionMNISTLT(LongTailedDataset):
    """FashionMNIST-LT: the CIFAR-LT profile applied to Fashion-MNIST's training set.

    Protocol: class ``i`` (label order) keeps ``int(6000 * IR ** (-i / 9))`` of its 6,000
    training images, chosen as in LDAM (``RandomState(seed)`` shuffles each class, the first
    ``n_i`` are kept). IR 100 keeps 14,886 images (6000, 3596, 2156, 1292, 774, 464, 278, 166,
    100, 60): 8 many-shot, 2 medium-shot classes. The test split is the official balanced
    10,000 images; validation takes ``val_per_class`` (default 100) discarded images per class.
    Images are 28x28 grey (``(28, 28, 1)`` uint8: set ``in_channels=1`` on the backbone).

    ``data_root`` holds ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` (e.g. Debian's
    ``dataset-fashion-mnist`` package installs them in ``/usr/share/datasets/fashion-mnist``).
    Split files list indices into the official training file order.
    """

    METAINFO = {'classes': FASHION_MNIST_CLASSES}
    DEFAULT_N_MAX = 6000
    DEFAULT_VAL_PER_CLASS = 100
    FILES = {'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
             'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')}

    def _load_source(self, split: str) -> Tuple[np.ndarray, np.ndarray, None]:
        image_file, label_file = self.FILES[split]
        require_files(self.data_root, [image_file, label_file], type(self).__name__,
                      'Point data_root at the folder with the four gzipped Fashion-MNIST '
                      'IDX files (Debian: apt-get install dataset-fashion-mnist).')
        images = read_idx(osp.join(self.data_root, image_file))
        labels = read_idx(osp.join(self.data_root, label_file)).astype(np.int64)
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f'{image_file} / {label_file}: {images.shape} images for '
                             f'{len(labels)} labels.')
        return images[..., None], labels, None
