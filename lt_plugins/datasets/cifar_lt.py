"""Long-tailed CIFAR-10 / CIFAR-100 (LDAM protocol) from the standard python-version files."""
import hashlib
import os.path as osp
import pickle
from typing import Any, List, Tuple

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


class CifarBatchError(pickle.UnpicklingError):
    """A CIFAR batch file holds something the official files never do."""


def _numeric_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` for the unpickler: only dtypes of plain numbers."""
    dtype = np.dtype(*args)
    if dtype.hasobject or dtype.kind not in 'biuf':
        raise CifarBatchError(f'an array of dtype {dtype}')
    return dtype


def _ndarray_reconstruct(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's array constructor for pickles, for plain ``numpy.ndarray`` only."""
    if subtype is not np.ndarray:
        raise CifarBatchError(f'an array of type {subtype!r}')
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _ndarray_frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """numpy's array constructor for pickle protocol 5, for arrays of numbers only."""
    return np.frombuffer(buffer, dtype=_numeric_dtype(dtype)).reshape(shape, order=order)


def _latin1_bytes(text: Any, encoding: str = 'latin1') -> bytes:
    """``_codecs.encode`` as Python 3 pickles ``bytes`` under protocol 2: str -> latin-1."""
    if not isinstance(text, str) or encoding.replace('-', '').lower() != 'latin1':
        raise CifarBatchError(f'_codecs.encode of a {type(text).__name__} to {encoding!r}')
    return text.encode('latin1')


class CifarBatchUnpickler(pickle.Unpickler):
    """Unpickles only what the official CIFAR python-version files contain: dicts, lists,
    str, bytes, int, and numpy arrays of numbers (rebuilt with numpy's ``_reconstruct``,
    ``ndarray`` and ``dtype``, or ``_frombuffer`` in a copy pickled with protocol 5, under
    numpy 1's or 2's module name; the latin-1 ``_codecs.encode`` with which Python 3 writes
    bytes under protocol 2). Any other global is refused before it is looked up, so a
    crafted file cannot run code."""

    _ALLOWED = {
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): _numeric_dtype,
        ('_codecs', 'encode'): _latin1_bytes,
    }
    for _core in ('numpy.core', 'numpy._core'):
        _ALLOWED[(f'{_core}.multiarray', '_reconstruct')] = _ndarray_reconstruct
        _ALLOWED[(f'{_core}.numeric', '_frombuffer')] = _ndarray_frombuffer
    del _core

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        raise CifarBatchError(f'{module}.{name}')

    def persistent_load(self, pid: Any) -> Any:
        raise CifarBatchError('a persistent id')


def _check_plain(value: Any, where: str = 'the file') -> None:
    """Refuse any value but dict / list / str / bytes / int / numeric ndarray."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, f'{where}, a key')
            _check_plain(item, f'{where}[{key!r}]')
    elif isinstance(value, list):
        for item in value:
            _check_plain(item, f'{where}, an item')
    elif isinstance(value, np.ndarray):
        if type(value) is not np.ndarray or value.dtype.kind not in 'biuf':
            raise CifarBatchError(f'{where}: an array of dtype {value.dtype}')
    elif type(value) not in (str, bytes, int):
        raise CifarBatchError(f'{where}: a {type(value).__module__}.'
                              f'{type(value).__qualname__}')


def load_cifar_batch(path: str) -> dict:
    """Read one CIFAR python-version batch (or meta) file without running code from it.

    Raises:
        CifarBatchError: the file needs or holds anything besides dict, list, str, bytes,
            int and numeric numpy arrays (named with the file).
    """
    try:
        with open(path, 'rb') as f:
            entry = CifarBatchUnpickler(f, encoding='latin1').load()
        if not isinstance(entry, dict):
            raise CifarBatchError(f'a {type(entry).__name__} at the top, not a dict')
        _check_plain(entry)
    except CifarBatchError as err:
        raise CifarBatchError(
            f'Refusing to read {path}: unpickling it needs or holds {err}, which the official '
            'CIFAR python-version files never contain (only dicts, lists, str, bytes, int and '
            'numpy arrays of numbers), so reading it could run code. Rebuild the file from '
            'the images as such a dict (`data` uint8 (N, 3072), the label list, `filenames`) '
            'or download the official archive.') from None
    return entry


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
    ``verify_md5=False``. Either way the files are read by :class:`CifarBatchUnpickler`
    (only the types the official files contain; anything else is refused, naming the file,
    so a replaced file cannot run code). The drawn subset then is a valid long-tailed split but not
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
            entry = load_cifar_batch(path)
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
