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

``--probe``: a fast frozen-backbone calibration instead. Features of the CE checkpoint are
extracted once (no augmentation), then the head alone is fine-tuned on the cached features
for each reading (``PROBE_READINGS``), the CE control and cRT, in seconds each. It measures
the re-balancing side of each reading only (no feature jitter: a frozen backbone without
augmentation gives every image one feature), to narrow down the readings worth a full run.

Prints a table (overall / many / medium / few, wall time) and writes
``<work-dir>/bench_mbj_accuracy_<dataset>.json`` (``..._probe.json`` with ``--probe``).
Long: tens of minutes per run on one
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
    # the two best readings of the frozen-feature probe (--probe, CIFAR-10-LT IR100)
    'frozen-size50C-eta5': {'model.type': 'DecoupledClassifier', 'model.reinit_head': False,
                            'model.head.memory.size': 'x50C', 'model.head.eta': 5.0},
    'size50C-eta5': {'model.head.memory.size': 'x50C', 'model.head.eta': 5.0},
    'frozen-eta1': {'model.type': 'DecoupledClassifier', 'model.reinit_head': False,
                    'model.head.eta': 1.0},
    'frozen-size50C': {'model.type': 'DecoupledClassifier', 'model.reinit_head': False,
                       'model.head.memory.size': 'x50C'},
    'size50C-paper': {'model.head.memory.size': 'x50C'},
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
# Issue 18 screens (trainable backbone). (1) the memory-phase lr: 1e-3, 1e-4, or lr 0.01
# with the backbone at lr_mult 0.1, each next to its CE fine-tuning control at the same lr
# (the 'ce-ft-*' readings: the same config with the memory off; they are controls, not MBJ
# readings: leave them out of the choice). (2) the memory mix at lr 1e-3: beta 1, per-class
# rings (5 slots each: a class-balanced memory of the paper's 5C size), L_memory over the
# memory capacity. (3) MBJ at lr 1e-3 then cRT. Configs: configs/mbj/*-cpu-lr1e-3*.py etc.
_LR1E3 = {'optim_wrapper.optimizer.lr': 0.001}
_LR1E4 = {'optim_wrapper.optimizer.lr': 0.0001}
_BB_MULT = {'optim_wrapper.paramwise_cfg': dict(custom_keys={'backbone': dict(lr_mult=0.1)})}
_CE_FT = {'model.head.memory_enabled': False, 'custom_hooks': [dict(type='ClassCountsHook')]}
READINGS.update({
    'ce-ft-lr1e-3': dict(_CE_FT, **_LR1E3),
    'ce-ft-lr1e-4': dict(_CE_FT, **_LR1E4),
    'ce-ft-bbmult0.1': dict(_CE_FT, **_BB_MULT),
    'lr1e-3': dict(_LR1E3),
    'lr1e-4': dict(_LR1E4),
    'bbmult0.1': dict(_BB_MULT),
    'lr1e-3-beta1': dict(_LR1E3, **{'model.head.memory.beta': 1.0}),
    'lr1e-3-perclass5': dict(_LR1E3, **{'model.head.memory.size': None,
                                        'model.head.memory.per_class_slots': 5}),
    'lr1e-3-capacity': dict(_LR1E3, **{'model.head.memory_reduction': 'capacity'}),
    'lr1e-3-size50C-eta5': dict(_LR1E3, **{'model.head.memory.size': 'x50C',
                                           'model.head.eta': 5.0}),
    'lr1e-3+crt': dict(_LR1E3, __then_crt__=True),
})
# `--readings` of the issue 18 screens: (1) first; (2)-(3) at the lr (1) picks on val.
SCREEN_LR_READINGS = ('ce-ft-lr1e-3', 'lr1e-3', 'ce-ft-lr1e-4', 'lr1e-4', 'ce-ft-bbmult0.1',
                      'bbmult0.1')
SCREEN_MEMORY_READINGS = ('ce-ft-lr1e-3', 'lr1e-3', 'lr1e-3-beta1', 'lr1e-3-perclass5',
                          'lr1e-3-capacity', 'lr1e-3-size50C-eta5', 'lr1e-3+crt', 'paper',
                          'paper+crt')
# First pass, in priority order (see the probe numbers in the MBJ report): the frozen
# readings that won the cached-feature probe, the same memories with a trainable backbone,
# the literal paper reading for the record, and MBJ followed by cRT.
DEFAULT_READINGS = ('frozen-size50C-eta5', 'frozen-size50C', 'frozen-eta1', 'size50C-eta5',
                    'size50C-paper', 'paper', 'paper+crt')

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


# Head-only readings for --probe: (head overrides, epochs, lr, reinit + class-balanced (cRT))
PROBE_READINGS: Dict[str, dict] = {
    'ce-ft': dict(head=dict(memory_enabled=False)),
    'crt': dict(head=dict(memory_enabled=False), crt=True),
    'paper': dict(head={}),
    'paper-raw': dict(head=dict(memory=dict(admission='raw'))),
    'beta1': dict(head=dict(memory=dict(beta=1.0))),
    'beta0.5': dict(head=dict(memory=dict(beta=0.5))),
    'beta1.5-eta1': dict(head=dict(eta=1.0)),
    'beta1-eta1': dict(head=dict(eta=1.0, memory=dict(beta=1.0))),
    'beta1-eta5': dict(head=dict(eta=5.0, memory=dict(beta=1.0))),
    'perclass5': dict(head=dict(memory=dict(size=None, per_class_slots=5))),
    'perclass5-beta1': dict(head=dict(memory=dict(size=None, per_class_slots=5, beta=1.0))),
    'size50C-beta1': dict(head=dict(memory=dict(size='x50C', beta=1.0))),
    'size50C-paper': dict(head=dict(memory=dict(size='x50C'))),
    'paper-capacity': dict(head=dict(memory_reduction='capacity')),
    'paper-batchred': dict(head=dict(memory_reduction='batch')),
    'cosine-beta1': dict(head=dict(classifier='cosine', memory=dict(beta=1.0))),
    'size50C-eta1': dict(head=dict(eta=1.0, memory=dict(size='x50C'))),
    'size50C-eta5': dict(head=dict(eta=5.0, memory=dict(size='x50C'))),
    'paper-eta5': dict(head=dict(eta=5.0)),
    'fr': dict(head=dict(variant='FR')),
    'fr-eta1': dict(head=dict(variant='FR', eta=1.0)),
}


def probe(args, ce_ckpt: str) -> dict:
    """Frozen-backbone calibration on cached features (see module docstring)."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS
    from mmpretrain.structures import DataSample

    from lt_plugins.datasets.class_counts import get_class_counts
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg = Config.fromfile(f'configs/mbj/mbj_resnet32-cifar_1xb128_{args.dataset}-cpu.py')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['data_preprocessor'] = cfg.data_preprocessor
    model = MODELS.build(model_cfg)
    load_checkpoint(model, ce_ckpt, map_location='cpu', strict=False, logger='silent')
    model.eval()
    C = cfg.model.head.num_classes

    t0 = time.perf_counter()
    feats, labels, counts = {}, {}, None
    cache = args.feature_cache
    if cache and osp.isfile(cache):
        feats, labels, counts = torch.load(cache, weights_only=False)
    for split in ([] if feats else ('train', 'val', 'test')):
        ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
        ds_cfg.update(split=split, data_root=args.data_root)
        if args.dataset.startswith('cifar'):
            ds_cfg['verify_md5'] = False
        ds = DATASETS.build(ds_cfg)
        if split == 'train':
            counts = get_class_counts(ds)
        idx = range(len(ds)) if not args.quick else np.linspace(0, len(ds) - 1, 512).astype(int)
        out_f, out_y = [], []
        batch = []
        with torch.no_grad():
            for n, i in enumerate(idx):
                batch.append(ds[int(i)])
                if len(batch) == 256 or n == len(idx) - 1:
                    data = model.data_preprocessor(pseudo_collate(batch), False)
                    out_f.append(model.extract_feat(data['inputs'])[-1])
                    out_y.append(torch.cat([s.gt_label for s in data['data_samples']]))
                    batch = []
        feats[split], labels[split] = torch.cat(out_f), torch.cat(out_y)
    if cache and not osp.isfile(cache):
        torch.save((feats, labels, counts), cache)
    extract_s = time.perf_counter() - t0
    counts_t = torch.as_tensor(counts)
    train_samples = [DataSample().set_gt_label(int(v)) for v in labels['train']]
    many, few = counts_t > 100, counts_t < 20

    def evaluate(head, split):
        with torch.no_grad():
            pred = head.classify(feats[split]).argmax(1)
        y = labels[split]
        per_class = torch.stack([(pred[y == c] == c).float().mean() if (y == c).any()
                                 else torch.tensor(float('nan')) for c in range(C)])
        res = dict(top1=float((pred == y).float().mean() * 100))
        for name, mask in (('many', many), ('medium', ~many & ~few), ('few', few)):
            if mask.any():
                res[name] = float(torch.nanmean(per_class[mask]) * 100)
        return res

    def run_reading(name, spec, seed):
        head_cfg = copy.deepcopy(cfg.model.head)
        over = copy.deepcopy(spec['head'])
        mem_over = over.pop('memory', {})
        if mem_over.get('size') == 'x50C':
            mem_over['size'] = 50 * C
        head_cfg['memory'].update(mem_over)
        head_cfg.update(over)
        head_cfg['memory']['seed'] = seed
        head = MODELS.build(head_cfg)
        if not spec.get('crt'):  # start from the CE classifier (fc.* of the CE head)
            fc = {k: v for k, v in model.head.state_dict().items() if k.startswith('fc.')}
            if head.classifier == 'linear':
                head.load_state_dict(fc, strict=False)
            else:
                head.weight.data.copy_(fc['fc.weight'])
        head.set_class_counts(counts_t)
        for m in head.modules():
            if hasattr(m, 'set_class_counts') and m is not head:
                m.set_class_counts(counts_t)
        epochs = 10 if not args.quick else 1
        lr = 0.1 if spec.get('crt') else 0.01
        opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=2e-4)
        gen = torch.Generator().manual_seed(seed)
        n = len(labels['train'])
        steps = (n + 127) // 128
        if spec.get('crt'):
            w = (1.0 / counts_t.float())[labels['train']]
        t1 = time.perf_counter()
        for ep in range(epochs):
            if spec.get('crt'):  # class-balanced sampling, cosine lr
                order = torch.multinomial(w, n, replacement=True, generator=gen)
            else:
                order = torch.randperm(n, generator=gen)
            for s in range(steps):
                if spec.get('crt'):
                    for g in opt.param_groups:
                        frac = (ep * steps + s) / (epochs * steps)
                        g['lr'] = 0.5 * lr * (1 + np.cos(np.pi * frac))
                b = order[s * 128:(s + 1) * 128]
                samples = [train_samples[int(i)] for i in b]
                losses = head.loss((feats['train'][b], ), samples)
                opt.zero_grad()
                sum(losses.values()).backward()
                opt.step()
        return dict(name=name, seed=seed, wall_s=time.perf_counter() - t1,
                    val=evaluate(head, 'val'), test=evaluate(head, 'test'))

    runs = {}
    for name in args.probe_readings:
        for seed in args.probe_seeds:
            runs.setdefault(name, []).append(run_reading(name, PROBE_READINGS[name], seed))
    return dict(dataset=args.dataset, mode='probe (frozen backbone, cached features)',
                ce_checkpoint=ce_ckpt, extract_s=extract_s, class_counts=counts.tolist(),
                runs=runs)


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
    p.add_argument('--tag', default='', help='suffix of the output JSON name')
    p.add_argument('--quick', action='store_true', help='1 epoch, 512 images: smoke test')
    p.add_argument('--probe', action='store_true',
                   help='frozen-backbone calibration on cached features (fast)')
    p.add_argument('--probe-readings', nargs='+', default=list(PROBE_READINGS))
    p.add_argument('--probe-seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--feature-cache', default=None,
                   help='--probe: file to save / reuse the extracted features')
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
    if args.probe:
        if not osp.isfile(ce_ckpt):
            raise SystemExit(f'--probe needs a CE checkpoint: {ce_ckpt} not found '
                             '(pass --ce-checkpoint).')
        res = probe(args, ce_ckpt)
        summary = {k: dict(val=_mean_std(v, 'val'), test=_mean_std(v, 'test'), seeds=len(v))
                   for k, v in res['runs'].items()}
        res['summary'] = summary
        best = max((k for k in summary if k not in ('ce-ft', 'crt')),
                   key=lambda k: summary[k]['val']['top1'])
        res['chosen_on_val'] = best
        print(f'\n{ds} probe (frozen backbone, cached features, {res["extract_s"]:.0f} s '
              f'extraction); chosen on val: {best}')
        print(f'{"reading":<18}{"seeds":>6}{"val top1":>10}{"test top1":>11}{"(std)":>7}'
              f'{"many":>8}{"medium":>8}{"few":>8}')
        for k, s in summary.items():
            te = s['test']
            print(f'{k:<18}{s["seeds"]:>6}{s["val"]["top1"]:>10.2f}{te["top1"]:>11.2f}'
                  f'{te["top1_std"]:>7.2f}{te.get("many", float("nan")):>8.2f}'
                  f'{te.get("medium", float("nan")):>8.2f}{te.get("few", float("nan")):>8.2f}')
        os.makedirs(args.work_dir, exist_ok=True)
        out = osp.join(args.work_dir, f'bench_mbj_accuracy_{ds}_probe{args.tag}.json')
        with open(out, 'w') as f:
            json.dump(res, f, indent=2)
        print(f'wrote {out}')
        return
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
