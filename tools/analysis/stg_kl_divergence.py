"""Table 5 of the STG paper: how different are the transformations STG predicts for several
samples of one tail class?

For ``--num-samples`` training images of a tail class (default: the rarest class), the
frozen backbone gives features ``a_i``; each sample borrows the token of its most similar
head class (the stage-3 rule: cosine similarity to the head-class mean features stored with
the generator) and the generator predicts ``N(mu_i, Sigma_i)``. The tool prints the matrix
``KL(N_i || N_j)`` (row ``i``, column ``j``; asymmetric, as in the paper) and the borrowed
head class of each sample, and writes both as JSON::

    python tools/analysis/stg_kl_divergence.py \\
        configs/stg/stg-stage3_resnet32-cifar_1xb128_cifar100-lt-ir100.py \\
        work_dirs/stg-stage2_resnet32-cifar_1xb128_cifar100-lt-ir100/epoch_10.pth \\
        [--tail-class 90] [--num-samples 5] [--seed 0] [--out kl.json] [--cfg-options ...]

The checkpoint may be the stage-2 or the stage-3 one (both carry the generator). Features
are computed with the test pipeline (no augmentation).
"""
import argparse
import json
import os.path as osp
import sys
from typing import List, Optional

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint
from mmpretrain.registry import DATASETS, MODELS

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..'))
import lt_plugins  # noqa: E402,F401
from lt_plugins.datasets.class_counts import get_class_counts  # noqa: E402
from lt_plugins.models.stg import diagonal_gaussian_kl  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='KL divergence between the STG '
                                     'transformations of several tail samples (Table 5).')
    parser.add_argument('config', help='an STG stage-2 or stage-3 config')
    parser.add_argument('checkpoint', help='stage-2 or stage-3 checkpoint')
    parser.add_argument('--tail-class', type=int, default=None,
                        help='class to analyse (default: the rarest training class)')
    parser.add_argument('--num-samples', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0, help='which samples are drawn')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default=None, help='JSON output path')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


@torch.no_grad()
def analyse(model, feats: torch.Tensor, token_metric: str = 'cosine') -> dict:
    """Borrowed head classes, predicted ``(mu, Sigma)`` and their pairwise KL matrix."""
    head = model.head
    gen = head.generator.eval()
    if int(gen.trained_iters) == 0:
        raise RuntimeError('the checkpoint holds an untrained generator: pass a stage-2 or '
                           'stage-3 STG checkpoint.')
    if getattr(head, 'token_source', 'prototype') == 'classifier':  # stage-3 head's own rule
        token = head.select_head_class(feats)
    else:
        token = gen.select_head_class(feats, head.head_mask(), token_metric)
    mu, sigma = gen(feats, token)
    kl = diagonal_gaussian_kl(mu, sigma)
    return dict(head_class=token.tolist(), kl=kl.tolist(),
                mu_norm=mu.norm(dim=1).tolist(), sigma_mean=sigma.mean(dim=1).tolist())


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model_cfg = cfg.model.copy()
    model_cfg['data_preprocessor'] = cfg.get('data_preprocessor', model_cfg.get(
        'data_preprocessor'))
    model_cfg['require_pretrained'] = False
    model = MODELS.build(model_cfg)
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=False)
    model.to(args.device).eval()
    if not hasattr(model.head, 'generator'):
        raise TypeError(f'{args.config}: model.head is {type(model.head).__name__}, not an '
                        'STG head (STGGeneratorHead / STGClsHead).')

    ds_cfg = cfg.train_dataloader.dataset.copy()
    ds_cfg['pipeline'] = cfg.test_dataloader.dataset.pipeline
    dataset = DATASETS.build(ds_cfg)
    counts = get_class_counts(dataset)
    labels = np.asarray(dataset.get_gt_labels())
    head_mask = model.head.head_mask().cpu().numpy()
    cls = int(np.argmin(np.where(counts > 0, counts, counts.max() + 1))
              if args.tail_class is None else args.tail_class)
    if head_mask[cls]:
        raise ValueError(f'class {cls} is a head class (N_c = {counts[cls]} > '
                         f'head_threshold); pick a tail class with --tail-class.')
    pool = np.where(labels == cls)[0]
    rng = np.random.RandomState(args.seed)
    chosen = np.sort(rng.choice(pool, size=min(args.num_samples, len(pool)), replace=False))
    batch = pseudo_collate([dataset[int(i)] for i in chosen])
    data = model.data_preprocessor(batch, False)
    feats = model.extract_feat(data['inputs'])[-1]
    metric = getattr(model.head, 'token_metric', 'cosine')
    result = analyse(model, feats, metric)
    result.update(tail_class=cls, train_count=int(counts[cls]), sample_index=chosen.tolist())

    n = len(chosen)
    names = [f'Sample{i + 1}' for i in range(n)]
    print(f'Class {cls} ({counts[cls]} training images), samples {chosen.tolist()}')
    print('KL(row || column)  ' + ''.join(f'{s:>10}' for s in names))
    for i in range(n):
        print(f'{names[i]:<19}' + ''.join(f'{result["kl"][i][j]:10.1f}' for j in range(n)))
    print(f'{"most similar class":<19}' + ''.join(f'{c:>10}' for c in result['head_class']))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
