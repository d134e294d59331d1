"""Datasets of the benchmark command: a name plus arguments gives the dataset part of a config.

A :class:`DatasetSpec` says which ``configs/_base_/datasets`` file supplies the loaders,
pipelines, normaliser and evaluators, which dataset type and arguments replace the base
file's, and what the method templates need to know (classes, channels, image size, batch
size). ``register_dataset`` adds a preset; any registered long-tailed type works.
"""
import copy
import os.path as osp
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Optional

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


@dataclass
class DatasetSpec:
    """What the benchmark needs to put any long-tailed dataset into a method's config.

    Args:
        name: key of the preset (``--dataset``).
        base_config: dataset base config (relative to the repository) whose loaders,
            ``data_preprocessor`` and evaluators are used.
        type: dataset type registered in ``mmpretrain.registry.DATASETS``.
        num_classes: number of classes ``C``.
        in_channels: image channels (1 for grey images).
        image_size: side of the (square) network input.
        kwargs: dataset arguments put on every split (``imb_factor``, ``data_root`` ...).
        batch_size: training batch size; the template's learning rates scale by
            ``batch_size / 128`` (linear scaling, the templates are written for 128).
        lr_factor: extra factor on every learning rate (on top of the batch scaling).
    """
    name: str
    base_config: str
    type: str
    num_classes: int
    in_channels: int = 3
    image_size: int = 32
    kwargs: Dict[str, object] = field(default_factory=dict)
    batch_size: int = 128
    lr_factor: float = 1.0

    @property
    def tag(self) -> str:
        """Directory-safe identity: preset name plus the dataset arguments that change data."""
        parts = [self.name]
        for key in sorted(self.kwargs):
            if key in ('data_root', 'verify_md5'):
                continue
            val = self.kwargs[key]
            if isinstance(val, float) and val.is_integer():
                val = int(val)
            if key == 'pack_file':      # the pack's name, not its path
                parts.append(osp.splitext(osp.basename(str(val)))[0])
                continue
            parts.append(f'{key}{val}'.replace('/', '_').replace(' ', ''))
        return '-'.join(parts)


DATASET_SPECS: Dict[str, Callable[..., DatasetSpec]] = {}


def register_dataset(name: str):
    """Decorator: ``fn(**args) -> DatasetSpec`` becomes the preset ``name``."""
    def wrap(fn):
        if name in DATASET_SPECS:
            raise ValueError(f'dataset preset {name!r} is already registered')
        DATASET_SPECS[name] = fn
        return fn
    return wrap


def _ir(args: dict, default: float) -> dict:
    out = dict(args)
    if 'ir' in out:
        out['imb_factor'] = out.pop('ir')
    out.setdefault('imb_factor', default)
    return out


@register_dataset('digits-lt')
def _digits(**args) -> DatasetSpec:
    return DatasetSpec('digits-lt', 'configs/_base_/datasets/digits_lt.py', 'DigitsLT', 10,
                       in_channels=1, image_size=8, kwargs=_ir(args, 25), batch_size=32,
                       lr_factor=2.0)  # lr 0.05 at batch 32, as the DigitsLT configs


@register_dataset('fashion-mnist-lt')
def _fmnist(**args) -> DatasetSpec:
    return DatasetSpec('fashion-mnist-lt', 'configs/_base_/datasets/fashion_mnist_lt_ir100.py',
                       'FashionMNISTLT', 10, in_channels=1, image_size=28,
                       kwargs=_ir(args, 100))


@register_dataset('cifar10-lt')
def _cifar10(**args) -> DatasetSpec:
    args = _ir(args, 100)
    args.setdefault('verify_md5', False)
    return DatasetSpec('cifar10-lt', 'configs/_base_/datasets/cifar10_lt_ir100.py',
                       'CIFAR10LT', 10, kwargs=args)


@register_dataset('cifar100-lt')
def _cifar100(**args) -> DatasetSpec:
    args = _ir(args, 100)
    args.setdefault('verify_md5', False)
    return DatasetSpec('cifar100-lt', 'configs/_base_/datasets/cifar100_lt_ir100.py',
                       'CIFAR100LT', 100, kwargs=args)


def _list(name, base, type_, classes):
    @register_dataset(name)
    def _spec(**args) -> DatasetSpec:
        args = dict(args)
        num_classes = int(args.get('num_classes', classes))
        return DatasetSpec(name, base, type_, num_classes, image_size=224, kwargs=args,
                           batch_size=int(args.pop('batch_size', 64)))
    return _spec


_list('imagenet-lt', 'configs/_base_/datasets/imagenet_lt.py', 'ImageNetLT', 1000)
_list('places-lt', 'configs/_base_/datasets/places_lt.py', 'PlacesLT', 365)
_list('inat2018', 'configs/_base_/datasets/inat2018.py', 'INaturalist2018', 8142)


@register_dataset('packed')
def _packed(**args) -> DatasetSpec:
    """A pack of ``tools/benchmark/pack_dataset.py`` (``pack_file=...``), held in memory."""
    if 'pack_file' not in args:
        raise ValueError("--dataset packed needs --dataset-arg pack_file=PATH (a file written "
                         'by tools/benchmark/pack_dataset.py)')
    import numpy as np

    from lt_plugins.datasets.packed_lt import load_pack
    arrays = load_pack(str(args['pack_file']))
    h, _, c = arrays['train_img'].shape[1:]
    meta = {}
    if 'meta' in arrays:
        import json
        meta = json.loads(str(arrays['meta']))
    mean = [float(v) for v in np.asarray(arrays['train_img'], np.float32).reshape(
        -1, c).mean(0)]
    std = [float(v) for v in np.asarray(arrays['train_img'], np.float32).reshape(
        -1, c).std(0)]
    spec = DatasetSpec('packed', meta.get('base_config', 'configs/_base_/datasets/'
                                          'cifar10_lt_ir100.py'),
                       'PackedLT', len(arrays['classes']), in_channels=int(c),
                       image_size=int(h), kwargs=dict(pack_file=str(args['pack_file'])),
                       batch_size=int(meta.get('batch_size', 128)),
                       lr_factor=float(meta.get('lr_factor', 1.0)))
    spec.preprocessor = dict(mean=mean, std=std)  # type: ignore[attr-defined]
    return spec


def get_dataset_spec(name: str, args: Optional[Dict[str, object]] = None) -> DatasetSpec:
    """The preset ``name`` with ``args`` (``ir=...`` is an alias of ``imb_factor``)."""
    if name not in DATASET_SPECS:
        raise ValueError(f'--dataset {name!r} is not registered; choose from '
                         f'{sorted(DATASET_SPECS)} (or register_dataset a new one)')
    return DATASET_SPECS[name](**dict(args or {}))


def parse_value(text: str):
    """``--dataset-arg k=v`` value: int, float, bool, None or the string itself."""
    low = text.lower()
    if low in ('true', 'false'):
        return low == 'true'
    if low == 'none':
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def with_data_root(spec: DatasetSpec, data_root: Optional[str]) -> DatasetSpec:
    """``spec`` whose datasets read from ``data_root`` (``--data-root``)."""
    if not data_root:
        return spec
    kwargs = copy.deepcopy(spec.kwargs)
    kwargs['data_root'] = osp.abspath(data_root)
    out = replace(spec, kwargs=kwargs)
    if hasattr(spec, 'preprocessor'):
        out.preprocessor = spec.preprocessor  # type: ignore[attr-defined]
    return out
