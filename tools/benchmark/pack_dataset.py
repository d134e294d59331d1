"""Pack a long-tailed train split, its validation split and the test split into one .npz.

    python tools/benchmark/pack_dataset.py --dataset cifar10-lt --ir 100 \\
        --data-root ../shared/data/cifar-10-batches-py --out shared/packs/cifar10-lt-ir100.npz

The file (uint8 images, int64 labels, class names and the preset's batch size / lr factor /
base config) is read by the ``PackedLT`` dataset, which keeps it in memory: ``run.py
--dataset packed --dataset-arg pack_file=...`` trains on exactly the drawn images on a
machine without the source files (the GPU mode ships the pack with the working tree, so
the file must stay well under 64 MiB: ``--max-mib``).
"""
import argparse
import json
import os
import os.path as osp
import sys

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    from lt_plugins.benchmark.datasets import DATASET_SPECS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dataset', required=True,
                   choices=sorted(k for k in DATASET_SPECS if k != 'packed'))
    p.add_argument('--ir', type=float, default=None)
    p.add_argument('--dataset-arg', action='append', default=[], metavar='KEY=VALUE')
    p.add_argument('--data-root', default=None)
    p.add_argument('--out', required=True)
    p.add_argument('--max-mib', type=float, default=60.0,
                   help='refuse a pack larger than this (the working-tree copy limit is 64)')
    return p.parse_args(argv)


def encode_delta(img):
    """uint8 N x H x W x C images as differences along W (``PackedLT`` undoes it)."""
    import numpy as np
    return np.diff(img, axis=2, prepend=np.zeros_like(img[:, :, :1])).astype(np.uint8)


def pack(spec, out: str, max_mib: float = 60.0) -> dict:
    """Write the pack of ``spec``; returns its summary (sizes, counts)."""
    import numpy as np
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS

    import lt_plugins  # noqa: F401
    init_default_scope('mmpretrain')
    arrays, classes = {}, None
    for split in ('train', 'val', 'test'):
        ds = DATASETS.build(dict(type=spec.type, split=split, pipeline=[], **spec.kwargs))
        images = [ds.get_data_info(i)['img'] for i in range(len(ds))]
        if any(not isinstance(im, np.ndarray) for im in images):
            raise ValueError(f'{spec.type} stores image paths, not arrays: packing needs a '
                             'dataset that holds its images in memory (CIFAR-LT, '
                             'FashionMNIST-LT, DigitsLT)')
        img = np.stack(images).astype(np.uint8)
        if img.ndim == 3:
            img = img[..., None]
        # PNG's "sub" filter: each pixel minus its left neighbour (mod 256) deflates to ~0.8
        # of the raw bytes on natural images (CIFAR-10-LT IR100: 51 instead of 62 MiB)
        arrays[f'{split}_img'] = encode_delta(img)
        arrays[f'{split}_lbl'] = np.asarray([ds.get_data_info(i)['gt_label']
                                             for i in range(len(ds))], dtype=np.int64)
        classes = ds.metainfo['classes']
    meta = dict(encoding='delta-w', source=spec.tag, type=spec.type, base_config=spec.base_config,
                batch_size=spec.batch_size, lr_factor=spec.lr_factor,
                kwargs={k: v for k, v in spec.kwargs.items() if k != 'data_root'})
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = out + '.tmp.npz'
    np.savez_compressed(tmp, classes=np.asarray([str(c) for c in classes]),
                        meta=np.asarray(json.dumps(meta)), **arrays)
    size = osp.getsize(tmp) / 2**20
    if size > max_mib:
        os.remove(tmp)
        raise ValueError(f'the pack of {spec.tag} is {size:.1f} MiB, over --max-mib '
                         f'{max_mib}: it would not travel with the working tree')
    os.replace(tmp, out)
    counts = np.bincount(arrays['train_lbl'], minlength=len(classes))
    return dict(path=out, mib=size, train=len(arrays['train_lbl']),
                val=len(arrays['val_lbl']), test=len(arrays['test_lbl']),
                train_counts=counts.tolist())


def main(argv=None) -> dict:
    args = parse_args(argv)
    from lt_plugins.benchmark.datasets import get_dataset_spec, parse_value, with_data_root
    dargs = dict(kv.split('=', 1) for kv in args.dataset_arg)
    dargs = {k: parse_value(v) for k, v in dargs.items()}
    if args.ir is not None:
        dargs['imb_factor'] = args.ir
    spec = with_data_root(get_dataset_spec(args.dataset, dargs), args.data_root)
    info = pack(spec, args.out, args.max_mib)
    print(json.dumps({k: v for k, v in info.items() if k != 'train_counts'}))
    return info


if __name__ == '__main__':
    main()
