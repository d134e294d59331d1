"""Cost of AFA + LBLS against the plain model: one training step and inference.

    taskset -c 1 env OMP_NUM_THREADS=1 python tools/benchmark/bench_afa_overhead.py \
        [--model resnet32_cifar] [--batch 128] [--size 32] [--iters 10] [--warmup 3] \
        [--qkv linear] [--device cpu] [--clock cpu] [--out work_dirs/bench_afa_overhead.json]

Models (same trunk, last stage, pooling and classifier):

- ``plain``: ``ImageClassifier`` + ``TIMMBackbone`` + GAP + ``LinearClsHead`` (the CE
  baseline of ``configs/_base_/models/resnet32_cifar.py``);
- ``afa``: ``LabelAwareClassifier`` + ``TimmSplitBackbone`` + ``AFANeck`` + ``AFAClsHead``.

Timed: a full training step (data preprocessing excluded; forward, loss, backward, SGD
update through mmengine's ``train_step``) in LBLS's two phases -- before ``t`` (real
samples only) and after ``t`` (``G ~ gamma * B`` generated features also pass through the
last stage) -- and inference (``mode='predict'``, no gradients). Labels are drawn from the
CIFAR-10-LT IR100 class distribution so ``G`` is realistic.

Timed with the process CPU clock by default (``--clock cpu``: on a shared machine wall time
mostly measures the other jobs; needs a single-threaded CPU run) or wall time (``--clock
wall``, e.g. on a GPU). Median and minimum over ``--iters`` steps after ``--warmup``, the
variants interleaved step by step so that load drift hits all of them alike; prints a table
and writes the numbers as JSON.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import time

import numpy as np
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401
from lt_plugins.models.necks.afa_neck import generation_counts


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='resnet32_cifar')
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--num-classes', type=int, default=10)
    parser.add_argument('--imb-ratio', type=float, default=100.0)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--qkv', default='linear', choices=['linear', 'conv1x1'])
    parser.add_argument('--mask-axis', default='channel', choices=['channel', 'spatial'])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--clock', default='cpu', choices=['cpu', 'wall'],
                        help="'cpu': process CPU time (robust when other jobs share the "
                        "cores; single-threaded CPU runs only), 'wall': elapsed time")
    parser.add_argument('--out', default='work_dirs/bench_afa_overhead.json')
    return parser.parse_args()


def build(args, kind):
    torch.manual_seed(0)
    if kind == 'plain':
        cfg = dict(type='ImageClassifier',
                   backbone=dict(type='TIMMBackbone', model_name=args.model,
                                 features_only=True, out_indices=(-1, )),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=args.num_classes,
                             in_channels=0))
    else:
        cfg = dict(type='LabelAwareClassifier',
                   backbone=dict(type='TimmSplitBackbone', model_name=args.model),
                   neck=dict(type='AFANeck', in_channels=0, qkv=args.qkv,
                             mask_axis=args.mask_axis),
                   head=dict(type='AFAClsHead', num_classes=args.num_classes,
                             in_channels=0))
    probe = MODELS.build(dict(type='TimmSplitBackbone', model_name=args.model))
    cfg['head']['in_channels'] = probe.out_channels
    if kind == 'afa':
        cfg['neck']['in_channels'] = probe.trunk_channels
        cfg['neck']['feat_size'] = probe.trunk_feat_size((args.size, args.size))
    model = MODELS.build(cfg).to(args.device)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    return model, optim


def lt_labels(args, rng):
    counts = np.floor(5000 * (1 / args.imb_ratio) ** (
        np.arange(args.num_classes) / (args.num_classes - 1)))
    return rng.choice(args.num_classes, size=args.batch, p=counts / counts.sum())


def batches(args, n):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        labels = lt_labels(args, rng)
        inputs = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
        samples = [DataSample().set_gt_label(int(y)) for y in labels]
        out.append(dict(inputs=inputs, data_samples=samples))
    return out


def sync(args):
    if args.device.startswith('cuda'):
        torch.cuda.synchronize()


def train_step(model, optim, batch):
    with optim.optim_context(model):
        losses = model(batch['inputs'], batch['data_samples'], mode='loss')
    loss, _ = model.parse_losses(losses)
    optim.update_params(loss)


def timed(args, fn):
    clock = time.process_time if args.clock == 'cpu' else time.perf_counter
    sync(args)
    start = clock()
    fn()
    sync(args)
    return clock() - start


def run_interleaved(args, plain, plain_optim, afa, afa_optim, data):
    """One step of every variant per round, so that load drift hits all of them alike."""
    afa_lbls = [m for m in afa.modules() if hasattr(m, 'set_lbls_weight')]

    def set_lbls(weight):
        for module in afa_lbls:
            module.set_lbls_weight(weight)

    times = {k: [] for k in ('plain_train_s', 'afa_train_layback_s', 'afa_train_s',
                             'plain_infer_s', 'afa_infer_s')}
    for i, batch in enumerate(data):
        plain.train()
        afa.train()
        row = {'plain_train_s': timed(args, lambda: train_step(plain, plain_optim, batch))}
        set_lbls(0.0)
        row['afa_train_layback_s'] = timed(args, lambda: train_step(afa, afa_optim, batch))
        set_lbls(2.0)
        row['afa_train_s'] = timed(args, lambda: train_step(afa, afa_optim, batch))
        plain.eval()
        afa.eval()
        with torch.no_grad():
            row['plain_infer_s'] = timed(args, lambda: plain(batch['inputs'], mode='predict'))
            row['afa_infer_s'] = timed(args, lambda: afa(batch['inputs'], mode='predict'))
        if i >= args.warmup:
            for key, value in row.items():
                times[key].append(value)
    out = {key: statistics.median(values) for key, values in times.items()}
    out.update({key.replace('_s', '_min_s'): min(values) for key, values in times.items()})
    return out


def main():
    args = parse_args()
    if args.clock == 'cpu' and (args.device != 'cpu' or torch.get_num_threads() != 1):
        raise SystemExit('--clock cpu measures a single-threaded CPU run: set '
                         'OMP_NUM_THREADS=1 and --device cpu, or use --clock wall')
    data = batches(args, args.warmup + args.iters)
    num_gen = [int(generation_counts(torch.tensor([d.gt_label.item() for d in b['data_samples']]),
                                     4.0, 1.0)[2].sum()) for b in data]
    plain, plain_optim = build(args, 'plain')
    afa, afa_optim = build(args, 'afa')
    res = run_interleaved(args, plain, plain_optim, afa, afa_optim, data)
    for suffix in ('_s', '_min_s'):
        tag = '' if suffix == '_s' else '_min'
        res[f'train_ratio{tag}'] = res[f'afa_train{suffix}'] / res[f'plain_train{suffix}']
        res[f'train_layback_ratio{tag}'] = (res[f'afa_train_layback{suffix}'] /
                                            res[f'plain_train{suffix}'])
        res[f'infer_ratio{tag}'] = res[f'afa_infer{suffix}'] / res[f'plain_infer{suffix}']
    res['mean_generated_per_batch'] = float(np.mean(num_gen))
    res['params_plain'] = sum(p.numel() for p in plain.parameters())
    res['params_afa'] = sum(p.numel() for p in afa.parameters())
    res['config'] = dict(vars(args), threads=torch.get_num_threads(),
                         torch=torch.__version__)

    rows = [('train step, L = L_ori + lambda L_all (t <= e)', 'afa_train', 'train_ratio',
             '<= 1.40'),
            ('train step, lay-back phase L = L_ori (e < t)', 'afa_train_layback',
             'train_layback_ratio', ''),
            ('inference (predict)', 'afa_infer', 'infer_ratio', '<= 1.10')]
    print(f"{args.model}, {args.size}x{args.size}, batch {args.batch}, {args.device}, "
          f"{torch.get_num_threads()} thread(s), {args.clock} clock; qkv={args.qkv}; "
          f"{res['mean_generated_per_batch']:.1f} generated features per batch on average")
    print(f"plain (median / min): train {res['plain_train_s'] * 1e3:.1f} / "
          f"{res['plain_train_min_s'] * 1e3:.1f} ms, inference "
          f"{res['plain_infer_s'] * 1e3:.1f} / {res['plain_infer_min_s'] * 1e3:.1f} ms; "
          f"params {res['params_plain']} -> {res['params_afa']} with AFA")
    print(f"{'AFA + LBLS':48s} {'ms med':>8s} {'ratio':>7s} {'ms min':>8s} {'ratio':>7s} "
          f"{'target':>8s}")
    for name, key, ratio, target in rows:
        print(f"{name:48s} {res[key + '_s'] * 1e3:8.1f} {res[ratio]:7.3f} "
              f"{res[key + '_min_s'] * 1e3:8.1f} {res[ratio + '_min']:7.3f} {target:>8s}")
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(res, f, indent=2)
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
