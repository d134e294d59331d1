"""MBJ fine-tuning vs CE fine-tuning from one CE checkpoint (CIFAR-10-LT / FashionMNIST-LT, CPU).

Protocol (issue "MBJ", Benchmarks + Calibration):

1. One 30-epoch CE model per dataset (``configs/baselines/ce_..._<dataset>-cpu.py``); reused
   from ``--ce-checkpoint`` or ``work_dirs/bench_ce_<dataset>/epoch_30.pth`` (written by
   ``tools/benchmark/ce_crt.sh``) when present, trained here otherwise.
2. From that checkpoint, 10 epochs at lr 0.01: the CE fine-tuning control
   (``configs/mbj/ce-ft_..._<dataset>-cpu.py``) and MBJ under each *reading* of the paper
   (``READINGS`` below: memory layout, beta, eta, memory size, frozen vs trainable backbone,
   linear vs cosine classifier, MBJ followed by cRT). Optionally cRT from the CE model.
3. Every run is evaluated on the balanced **validation** split (images the long-tailed
   profile discards) and on the test split. The reading is chosen on validation overall
   top-1 only; the test numbers of the chosen reading and the control are the report.
   Where the validation gap between the chosen reading and the control is under
   ``--seed-gap`` (2 points), both are re-run with two more seeds and reported as mean/std.

Prints a table (overall / many / medium / few, wall time) and writes
``<work-dir>/bench_mbj_accuracy_<dataset>.json``. Long: tens of minutes per run on one
core; ``--quick`` runs 1 epoch on 512 images per split as a smoke test of the plumbing.

    OMP_NUM_THREADS=1 taskset -c 0 python tools/benchmark/bench_mbj_accuracy.py \
        --dataset cifar10-lt-ir100 --data-root ../shared/data/cifar-10-batches-py
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import time
from typing import Dict, List, Optional

# Each reading: cfg overrides (mmengine dotted keys) applied on top of the MBJ CPU config.
READINGS: Dict[str, dict] = {
    # the paper read literally: one global FIFO of 5C, (N_min/N)^1.5 admission, eta 15
    'paper': {},
    # memory composition ~ N^(1 - beta): beta 1 makes it class-balanced in expectation
    'beta1': {'model.head.memory.beta': 1.0},
    # eta 1: the memory no longer outweighs the batch 15:1
    'beta1.5-eta1': {'model.head.eta': 1.0},
    'beta1-eta5': {'model.head.memory.beta': 1.0, 'model.head.eta': 5.0},
    # per-class rings of 5 slots, refreshed with probability from Eq. 1
    'perclass5': {'model.head.memory.size': None, 'model.head.memory.per_class_slots': 5},
    'perclass20-beta1': {'model.head.memory.size': None,
                         'model.head.memory.per_class_slots': 20,
                         'model.head.memory.beta': 1.0},
    # longer history (more accumulated jitter): 50 slots per class on average
    'size50C-beta1': {'model.head.memory.size': 'x50C', 'model.head.memory.beta': 1.0},
    # memory phase with the representation frozen: only the classifier learns
    'frozen-beta1': {'model.type': 'DecoupledClassifier', 'model.reinit_head': False,
                     'model.head.memory.beta': 1.0},
    'frozen-paper': {'model.type': 'DecoupledClassifier', 'model.reinit_head': False},
    'cosine-beta1': {'model.head.classifier': 'cosine', 'model.head.memory.beta': 1.0},
    # what L_memory is averaged over: memory capacity (no amplification of a fresh memory)
    # or the batch size (each memorised feature weighs eta batch samples)
    'beta1-capacity': {'model.head.memory.beta': 1.0, 'model.head.memory_reduction': 'capacity'},
    'paper-batchred': {'model.head.memory_reduction': 'batch'},
    # memory-phase LR / length (the CE control stays at lr 0.01 for 10 epochs: compare with care)
    'beta1-lr0.001': {'model.head.memory.beta': 1.0, 'optim_wrapper.optimizer.lr': 0.001},
    'beta1-20ep': {'model.head.memory.beta': 1.0, 'train_cfg.max_epochs': 20,
                   'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=True,
                                            begin=0, end=20)]},
    # MBJ, then cRT (frozen backbone, re-initialised classifier, class-balanced sampling)
    'paper+crt': {'__then_crt__': True},
    'beta1+crt': {'model.head.memory.beta': 1.0, '__then_crt__': True},
}
DEFAULT_READINGS = ('paper', 'beta1', 'frozen-beta1', 'perclass5', 'size50C-beta1',
                    'beta1-eta5', 'beta1+crt')

CRT_OVERRIDES = {
    'model.type': 'DecoupledClassifier',
    'model.reinit_head': True,
    'model.head.memory_enabled': False,
    'train_dataloader.sampler': dict(type='ClassBalancedSampler', shuffle=True),
    'optim_wrapper.optimizer': dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4),
    'param_scheduler': [dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True,
                             begin=0, end=10, convert_to_iter_based=True)],
    'custom_hooks': [dict(type='ClassCountsHook')],
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dataset', default='cifar10-lt-ir100',
                   choices=['cifar10-lt-ir100', 'fashion-mnist-lt-ir100'])
    p.add_argument('--data-root', required=True)
    p.add_argument('--ce-checkpoint', default=None)
    p.add_argument('--readings', nargs='+', default=list(DEFAULT_READINGS),
                   help=f'subset of {list(READINGS)}')
    p.add_argument('--with-crt', action='store_true', help='also run cRT from the CE model')
    p.add_argument('--seed-gap', type=float, default=2.0)
    p.add_argument('--extra-seeds', type=int, nargs='+', default=[1, 2])
    p.add_argument('--num-workers', type=int, default=0)
    p.add_argument('--work-dir', default='work_dirs/bench_mbj_accuracy')
    p.add_argument('--quick', action='store_true', help='1 epoch, 512 images: smoke test')
    return p.parse_args()


def _data_opts(args) -> dict:
    opts = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts[f'{loader}.dataset.data_root'] = args.data_root
        opts[f'{loader}.num_workers'] = args.num_workers
        opts[f'{loader}.persistent_workers'] = False
        if args.dataset.startswith('cifar'):
            opts[f'{loader}.dataset.verify_md5'] = False
    if args.quick:
        opts['train_cfg.max_epochs'] = 1
        opts['train_cfg.val_interval'] = 1
        opts['param_scheduler'] = [dict(type='ConstantLR', factor=1.0, by_epoch=True,
                                        begin=0, end=1)]
    return opts


def run(cfg_path: str, work_dir: str, name: str, overrides: dict, args,
        load_from: Optional[str], seed: int = 0) -> dict:
    """Train one config, then evaluate on val and test; returns metrics and wall time."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(cfg_path)
    opts = dict(overrides)
    num_classes = cfg.model.head.num_classes
    if opts.get('model.head.memory.size') == 'x50C':
        opts['model.head.memory.size'] = 50 * num_classes
    opts.update(_data_opts(args))
    if args.quick:  # 512 images spread over the whole (class-sorted) split
        import numpy as np
        from mmengine.registry import init_default_scope
        from mmpretrain.registry import DATASETS
        init_default_scope('mmpretrain')
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            ds_cfg = copy.deepcopy(cfg[loader]['dataset'])
            ds_cfg.update(data_root=args.data_root, pipeline=[])
            if args.dataset.startswith('cifar'):
                ds_cfg['verify_md5'] = False
            n = len(DATASETS.build(ds_cfg))
            opts[f'{loader}.dataset.indices'] = np.linspace(0, n - 1, min(n, 512)).astype(
                int).tolist()
    if args.quick and 'param_scheduler' in overrides:
        opts['param_scheduler'] = _data_opts(args)['param_scheduler']
    opts['randomness'] = dict(seed=seed, deterministic=False)
    opts['work_dir'] = work_dir
    opts['experiment_name'] = name
    opts['load_from'] = load_from
    opts['default_hooks.checkpoint'] = dict(type='CheckpointHook', interval=1000,
                                            save_last=True, max_keep_ckpts=1)
    cfg.merge_from_dict(opts)
    runner = Runner.from_cfg(cfg)
    t0 = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - t0
    val = runner.val()
    test = runner.test()
    ckpt = osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    return dict(name=name, seed=seed, wall_s=wall, val=_shot(val), test=_shot(test),
                checkpoint=ckpt)


def _shot(metrics: dict) -> dict:
    out = {}
    for key, value in metrics.items():
        short = key.split('/')[-1]
        out[short] = float(value)
    return out


def _mean_std(runs: List[dict], split: str) -> dict:
    keys = runs[0][split].keys()
    out = {}
    for k in keys:
        vals = [r[split][k] for r in runs if k in r[split]]
        out[k] = statistics.mean(vals)
        out[k + '_std'] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return out


def main():
    args = parse_args()
    import lt_plugins  # noqa: F401  (registration, compat fixes)
    unknown = [r for r in args.readings if r not in READINGS]
    if unknown:
        raise SystemExit(f'unknown readings {unknown}; choose from {list(READINGS)}')
    ds = args.dataset
    root = osp.join(args.work_dir, ds)
    ce_cfg = f'configs/baselines/ce_resnet32-cifar_1xb128_{ds}-cpu.py'
    ft_cfg = f'configs/mbj/ce-ft_resnet32-cifar_1xb128_{ds}-cpu.py'
    mbj_cfg = f'configs/mbj/mbj_resnet32-cifar_1xb128_{ds}-cpu.py'
    results: Dict[str, object] = dict(dataset=ds, quick=args.quick, runs={})

    ce_ckpt = args.ce_checkpoint or f'work_dirs/bench_ce_{ds}/epoch_30.pth'
    if args.quick or not osp.isfile(ce_ckpt):
        ce = run(ce_cfg, osp.join(root, 'ce'), f'{ds}-ce', {}, args, None)
        results['runs']['ce'] = [ce]
        ce_ckpt = ce['checkpoint']
    results['ce_checkpoint'] = ce_ckpt

    def go(key: str, cfg_path: str, overrides: dict, seed: int) -> dict:
        overrides = dict(overrides)
        then_crt = overrides.pop('__then_crt__', False)
        r = run(cfg_path, osp.join(root, f'{key}-s{seed}'), f'{ds}-{key}-s{seed}', overrides,
                args, ce_ckpt, seed)
        if then_crt:
            crt = run(mbj_cfg, osp.join(root, f'{key}-crt-s{seed}'), f'{ds}-{key}-crt-s{seed}',
                      dict(CRT_OVERRIDES), args, r['checkpoint'], seed)
            crt['wall_s'] += r['wall_s']
            r = crt
        results['runs'].setdefault(key, []).append(r)
        return r

    go('ce-ft', ft_cfg, {}, 0)
    if args.with_crt:
        go('crt', mbj_cfg, CRT_OVERRIDES, 0)
    for reading in args.readings:
        go(f'mbj-{reading}', mbj_cfg, READINGS[reading], 0)

    # choose on validation overall top-1 (never on test)
    mbj_keys = [f'mbj-{r}' for r in args.readings]
    best = max(mbj_keys, key=lambda k: results['runs'][k][0]['val']['top1'])
    gap = results['runs'][best][0]['val']['top1'] - results['runs']['ce-ft'][0]['val']['top1']
    results['chosen_on_val'] = best
    results['val_gap_seed0'] = gap
    if abs(gap) < args.seed_gap and not args.quick:
        for seed in args.extra_seeds:
            go('ce-ft', ft_cfg, {}, seed)
            go(best, mbj_cfg, READINGS[best[len('mbj-'):]], seed)
    results['summary'] = {k: dict(val=_mean_std(v, 'val'), test=_mean_std(v, 'test'),
                                  seeds=len(v), wall_s=statistics.mean(r['wall_s'] for r in v))
                          for k, v in results['runs'].items()}

    print(f'\n{ds}: chosen on val = {best} (val gap vs CE fine-tuning {gap:+.2f}, seed 0)')
    print(f'{"run":<24}{"seeds":>6}{"val top1":>10}{"test top1":>11}{"many":>8}{"medium":>8}'
          f'{"few":>8}{"wall s":>9}')
    for k, s in results['summary'].items():
        t = s['test']
        print(f'{k:<24}{s["seeds"]:>6}{s["val"]["top1"]:>10.2f}{t["top1"]:>11.2f}'
              f'{t.get("many", float("nan")):>8.2f}{t.get("medium", float("nan")):>8.2f}'
              f'{t.get("few", float("nan")):>8.2f}{s["wall_s"]:>9.0f}')
    os.makedirs(args.work_dir, exist_ok=True)
    out = osp.join(args.work_dir, f'bench_mbj_accuracy_{ds}.json')
    with open(out, 'w') as f:
        json.dump(results, f, indent=2)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
