"""Extract pooled feature vectors of an image dataset with a trained model, as ``.npz``.

    python tools/extract_features.py CONFIG CHECKPOINT --split train --out train.npz
        [--pairs] [--pair-seed 0] [--batch-size 256] [--cfg-options k=v ...]

Runs the model's ``extract_feat`` (backbone + neck: the vector the head sees, e.g. the
64-d GAP feature of ResNet-32) over ``CONFIG``'s ``{split}`` dataset with the *test* pipeline
(no augmentation), and writes ``features (N, D)`` + CSR labels (``save_feature_npz``), readable
by ``FeatureVectorDataset``. With ``--pairs`` each image ``i`` is paired with one random image
of another class (``RandomState(pair_seed)``): the "video" is the mean of the two vectors and
carries both labels -- a multi-label, long-tailed set (label frequencies follow the image
split's) for the vector benchmark. Unknown-class images (label -1, open splits) are dropped.
"""
import argparse
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import lt_plugins  # noqa: F401
from lt_plugins.datasets import save_feature_npz


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Extract feature vectors as .npz')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    parser.add_argument('--out', required=True)
    parser.add_argument('--pairs', action='store_true',
                        help='pair images of different classes into two-label samples')
    parser.add_argument('--pair-seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def make_pairs(features: np.ndarray, labels: np.ndarray, seed: int):
    """Each sample ``i`` with one random sample of another class: mean vector, both labels."""
    rng = np.random.RandomState(seed)
    out_feats, out_labels = [], []
    for i in range(len(labels)):
        others = np.flatnonzero(labels != labels[i])
        if not others.size:
            raise ValueError('--pairs needs at least two classes.')
        j = others[rng.randint(others.size)]
        out_feats.append((features[i] + features[j]) / 2)
        out_labels.append(sorted({int(labels[i]), int(labels[j])}))
    return np.stack(out_feats).astype(np.float32), out_labels


@torch.no_grad()
def extract(cfg: Config, checkpoint: str, split: str, batch_size: int):
    from mmpretrain.registry import DATASETS, MODELS
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:    # as mmengine's Runner merges it
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=False)
    model.eval()
    dataset_cfg = cfg[f'{split}_dataloader'].dataset.copy()
    dataset_cfg.pipeline = cfg.test_dataloader.dataset.pipeline
    dataset = DATASETS.build(dataset_cfg)
    feats, labels = [], []
    for start in range(0, len(dataset), batch_size):
        batch = pseudo_collate([dataset[i] for i in range(start, min(start + batch_size,
                                                                      len(dataset)))])
        data = model.data_preprocessor(batch, False)
        out = model.extract_feat(data['inputs'])
        out = out[-1] if isinstance(out, (tuple, list)) else out
        feats.append(out.flatten(1).float().cpu().numpy())
        labels += [int(ds.gt_label[0]) for ds in data['data_samples']]
    return np.concatenate(feats), np.asarray(labels, dtype=np.int64)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    features, labels = extract(cfg, args.checkpoint, args.split, args.batch_size)
    keep = labels >= 0
    features, labels = features[keep], labels[keep]
    if args.pairs:
        features, label_lists = make_pairs(features, labels, args.pair_seed)
    else:
        label_lists = [[int(y)] for y in labels]
    save_feature_npz(args.out, features, label_lists)
    counts = np.bincount(np.concatenate([np.asarray(x) for x in label_lists]))
    print(f'{osp.basename(args.out)}: {features.shape[0]} samples x {features.shape[1]} dims, '
          f'label counts {counts.tolist()}')


if __name__ == '__main__':
    main()
