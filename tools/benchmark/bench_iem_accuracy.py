"""IEM + RSA vs the CE baseline with the 30-epoch CPU schedule (CIFAR-10-LT / FashionMNIST-LT).

Protocol (issue "IEM + RSA", Benchmarks):

1. The CE baseline (``configs/baselines/ce_resnet32-cifar_1xb128_<dataset>-cpu.py``): its
   checkpoint is reused from ``--ce-checkpoint`` or ``work_dirs/bench_ce_<dataset>/epoch_30.pth``
   (written by ``tools/benchmark/ce_crt.sh``) and only evaluated; trained here otherwise.
2. IEM + RSA from scratch with the same schedule, under each reading in ``--variants``:
   ``paper`` is ``configs/iem/iem_resnet32-cifar_1xb128_<dataset>-cpu.py``; the others are
   the Table 5 ablations and the open choices of the paper (``VARIANTS`` below, cfg
   overrides on top of it).
   Variants marked ``__eval_of__``, and any ``TRAINED@READING`` (``READINGS`` below, e.g.
   ``no-rsa@keys``, ``paper@keys+drop-local``), re-evaluate a trained variant's checkpoint with other inference settings
   (memory-score weights, normalisation, read) instead of training.
3. Every run is evaluated on the balanced validation split and on the test split (overall /
   many / medium / few top-1 from ``ShotAccuracy``). The reading to report is chosen on
   validation overall top-1; its test numbers and CE's are the result.

Prints a table and writes ``<work-dir>/bench_iem_accuracy_<dataset>.json``, keeping the runs
an earlier call wrote there (same seed) unless they are run again; with ``--reuse-trained`` a
trained variant whose final checkpoint is in its work dir is only evaluated, and
``__eval_of__`` variants may read a checkpoint trained by an earlier call. Long: each run
is 30 epochs on one core. ``--quick`` runs 1 epoch on 512 images per split (plumbing check).

    OMP_NUM_THREADS=1 taskset -c 0 python tools/benchmark/bench_iem_accuracy.py \\
        --dataset cifar10-lt-ir100 --data-root ../shared/data/cifar-10-batches-py
"""
import argparse
import copy
import json
import os
import os.path as osp
import time
from typing import Dict, Optional

# cfg overrides (mmengine dotted keys) on top of the IEM CPU config of the dataset.
_MEMORY_LR_1E3 = {'optim_wrapper.paramwise_cfg.custom_keys': {
    'head.global_memory': dict(adam=True, lr_mult=1e-2, decay_mult=0.0),
    'head.local_memory': dict(adam=True, lr_mult=1e-2, decay_mult=0.0)}}
VARIANTS: Dict[str, dict] = {
    'paper': {},
    # Table 5 ablations
    'no-rsa': {'model.neck.attention': False},
    'no-local': {'model.head.use_local_memory': False},
    'no-global': {'model.head.use_global_memory': False},
    # open choices of the paper
    'memlr1e-3': dict(_MEMORY_LR_1E3),
    'frozen-writes': dict(_MEMORY_LR_1E3, **{'model.head.write_after_warmup': False,
                                             'model.head.warmup_iters': 500}),
    'e2e': {'model.head.memory_loss_to_backbone': True},
    'logit-values': {'model.head.warmup_value': 'logit'},
    'region-max': {'model.head.region_reduce': 'max'},
    'classifier-heavy': {'model.head.inference_weights': dict(
        classifier=0.8, global_memory=0.1, local_memory=0.1)},
    # memory scores normalised over classes before the average with the softmax
    'norm-scores': {'model.head.normalize_memory_scores': True},
    'memlr1e-3-norm': dict(_MEMORY_LR_1E3, **{'model.head.normalize_memory_scores': True}),
    # inference-only readings of the 'paper' model (same weights and memories, no training):
    # the classifier alone, and the memory scores alone
    'paper-classifier-only': {'__eval_of__': 'paper', 'model.head.inference_weights': dict(
        classifier=1.0, global_memory=0.0, local_memory=0.0)},
    'paper-memory-only': {'__eval_of__': 'paper', 'model.head.inference_weights': dict(
        classifier=0.0, global_memory=0.5, local_memory=0.5)},
    'paper-norm-scores': {'__eval_of__': 'paper', 'model.head.normalize_memory_scores': True},
    'paper-classifier-heavy': {'__eval_of__': 'paper', 'model.head.inference_weights': dict(
        classifier=0.8, global_memory=0.1, local_memory=0.1)},
    'memlr1e-3-memory-only': {'__eval_of__': 'memlr1e-3', 'model.head.inference_weights': dict(
        classifier=0.0, global_memory=0.5, local_memory=0.5)},
    'memlr1e-3-norm-scores': {'__eval_of__': 'memlr1e-3',
                              'model.head.normalize_memory_scores': True},
    'paper-read-all': {'__eval_of__': 'paper', 'model.head.inference_read': 'all'},
    'paper-read-all-memory-only': {
        '__eval_of__': 'paper', 'model.head.inference_read': 'all',
        'model.head.inference_weights': dict(classifier=0.0, global_memory=0.5,
                                             local_memory=0.5)},
}
# Issue 18: the memory Adam lr held constant (HybridSGDAdam ``fixed_lr``: the warm-up and
# cosine schedulers no longer scale it), alone and with the other switches, 30 epochs from
# scratch -- the full runs for the winners of the 10-epoch screens
# (configs/iem/*-cpu-ft10*.py).
_FIXED_1E3 = {'optim_wrapper.paramwise_cfg.custom_keys': {
    'head.global_memory': dict(adam=True, fixed_lr=1e-3, decay_mult=0.0),
    'head.local_memory': dict(adam=True, fixed_lr=1e-3, decay_mult=0.0)}}
VARIANTS.update({
    'memlr1e-5-const': {'optim_wrapper.paramwise_cfg.custom_keys': {
        'head.global_memory': dict(adam=True, fixed_lr=1e-5, decay_mult=0.0),
        'head.local_memory': dict(adam=True, fixed_lr=1e-5, decay_mult=0.0)}},
    'memlr1e-3-const': dict(_FIXED_1E3),
    'learnable-values': dict(_FIXED_1E3, **{'model.head.write_after_warmup': False,
                                            'model.head.warmup_value': 'logit'}),
    'memlr1e-3-const-frozen-writes': dict(_FIXED_1E3,
                                          **{'model.head.write_after_warmup': False}),
    'memlr1e-3-const-logit': dict(_FIXED_1E3, **{'model.head.warmup_value': 'logit'}),
    'memlr1e-3-const-cbs': dict(_FIXED_1E3, **{'train_dataloader.sampler': dict(
        type='ClassBalancedSampler', shuffle=True)}),
    'memlr1e-3-const-e2e': dict(_FIXED_1E3, **{'model.head.memory_loss_to_backbone': True}),
    'memlr1e-3-const-merge': dict(_FIXED_1E3, **{'model.head.merge_radius': 0.05,
                                                 'model.head.merge_relative': True}),
})

# Inference-only readings of any trained variant T, named 'T@reading' (e.g. 'no-rsa@keys').
_MEMORY_ONLY = {'model.head.inference_weights': dict(classifier=0.0, global_memory=0.5,
                                                     local_memory=0.5)}
READINGS: Dict[str, dict] = {
    'classifier-only': {'model.head.inference_weights': dict(
        classifier=1.0, global_memory=0.0, local_memory=0.0)},
    'memory-only': _MEMORY_ONLY,
    'norm-scores': {'model.head.normalize_memory_scores': True},
    # reads normalised over all classes' nearest slots (a soft kNN on the values), and the
    # soft kNN on the keys alone (values taken as 1); Eq. 1's per-class normalisation
    # ignores how near a class's slots are
    'read-all': {'model.head.inference_read': 'all'},
    'keys': {'model.head.inference_read': 'keys'},
    'keys-memory-only': dict(_MEMORY_ONLY, **{'model.head.inference_read': 'keys'}),
    # Table 5 "w/o local / global memory" of a model trained with both: with
    # memory_loss_to_backbone=False (the default) no memory gradient reaches the backbone,
    # neck or classifier, so dropping a memory at inference is the ablation's model
    'drop-local': {'model.head.inference_weights': dict(
        classifier=0.5, global_memory=0.25, local_memory=0.0)},
    'drop-global': {'model.head.inference_weights': dict(
        classifier=0.5, global_memory=0.0, local_memory=0.25)},
    'global-only': {'model.head.inference_weights': dict(
        classifier=0.0, global_memory=1.0, local_memory=0.0)},
    'local-only': {'model.head.inference_weights': dict(
        classifier=0.0, global_memory=0.0, local_memory=1.0)},
}


def resolve(variant: str) -> dict:
    """cfg overrides of a variant, ``'__eval_of__'`` naming the trained one it re-reads."""
    if variant in VARIANTS:
        return dict(VARIANTS[variant])
    trained, _, reading = variant.partition('@')
    parts = reading.split('+')
    if (trained in VARIANTS and '__eval_of__' not in VARIANTS[trained]
            and all(part in READINGS for part in parts)):
        overrides = {'__eval_of__': trained}
        for part in parts:               # later parts win on the same key
            overrides.update(READINGS[part])
        return overrides
    raise SystemExit(f'unknown variant {variant!r}; choose from {list(VARIANTS)} or '
                     f'TRAINED@READING[+READING...] with READING in {list(READINGS)}')


DEFAULT_VARIANTS = ('paper', 'memlr1e-3', 'norm-scores', 'memlr1e-3-norm', 'no-rsa',
                    'no-local', 'no-global')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dataset', default='cifar10-lt-ir100',
                   choices=['cifar10-lt-ir100', 'fashion-mnist-lt-ir100'])
    p.add_argument('--data-root', required=True)
    p.add_argument('--ce-checkpoint', default=None)
    p.add_argument('--variants', nargs='+', default=list(DEFAULT_VARIANTS),
                   help=f'of {list(VARIANTS)}, or TRAINED@READING with READING in '
                        f'{list(READINGS)} (inference-only re-reading of a trained one)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-workers', type=int, default=0)
    p.add_argument('--work-dir', default='work_dirs/bench_iem_accuracy')
    p.add_argument('--quick', action='store_true', help='1 epoch, 512 images: smoke test')
    p.add_argument('--reuse-trained', action='store_true',
                   help='a trained variant whose work dir already holds its final checkpoint '
                        'is evaluated from it instead of trained again')
    return p.parse_args()


def _opts(args, cfg) -> dict:
    opts = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts[f'{loader}.dataset.data_root'] = args.data_root
        opts[f'{loader}.num_workers'] = args.num_workers
        opts[f'{loader}.persistent_workers'] = False
        if args.dataset.startswith('cifar'):
            opts[f'{loader}.dataset.verify_md5'] = False
    if args.quick:
        import numpy as np
        from mmengine.registry import init_default_scope
        from mmpretrain.registry import DATASETS
        init_default_scope('mmpretrain')
        opts['train_cfg.max_epochs'] = 1
        opts['train_cfg.val_interval'] = 1
        opts['param_scheduler'] = [dict(type='ConstantLR', factor=1.0, by_epoch=True,
                                        begin=0, end=1)]
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            ds_cfg = copy.deepcopy(cfg[loader]['dataset'])
            ds_cfg.update(data_root=args.data_root, pipeline=[])
            if args.dataset.startswith('cifar'):
                ds_cfg['verify_md5'] = False
            n = len(DATASETS.build(ds_cfg))
            opts[f'{loader}.dataset.indices'] = np.linspace(0, n - 1, min(n, 512)).astype(
                int).tolist()
    return opts


def _shot(metrics: dict) -> dict:
    return {key.split('/')[-1]: float(value) for key, value in metrics.items()}


def run(cfg_path: str, work_dir: str, name: str, overrides: dict, args,
        checkpoint: Optional[str] = None) -> dict:
    """Train (or, with ``checkpoint``, only load) one config; evaluate on val and test."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(cfg_path)
    opts = _opts(args, cfg)
    if args.quick and cfg.model.head.type == 'IEMHead':
        opts['model.head.warmup_iters'] = 2       # 4 training steps in the smoke test
    opts.update(overrides)
    opts.update({'randomness': dict(seed=args.seed, deterministic=False),
                 'work_dir': work_dir, 'experiment_name': name,
                 'default_hooks.checkpoint': dict(type='CheckpointHook', interval=1000,
                                                  save_last=True, max_keep_ckpts=1)})
    if checkpoint:
        opts['load_from'] = checkpoint
    cfg.merge_from_dict(opts)
    runner = Runner.from_cfg(cfg)
    if checkpoint:   # load_from is not strict: a reading must not run on a different model
        import torch
        saved = set(torch.load(checkpoint, map_location='cpu',
                               weights_only=False)['state_dict'])
        expected = set(runner.model.state_dict())
        if saved != expected:
            raise SystemExit(
                f'{name}: {checkpoint} does not match the model of this reading (missing '
                f'{sorted(expected - saved)[:4]}, unexpected {sorted(saved - expected)[:4]}); '
                'a TRAINED@READING variant must build the trained variant\'s model')
    wall = 0.0
    if not checkpoint:
        t0 = time.perf_counter()
        runner.train()
        wall = time.perf_counter() - t0
    val, test = runner.val(), runner.test()
    return dict(name=name, wall_s=wall, val=_shot(val), test=_shot(test),
                checkpoint=checkpoint or osp.join(work_dir,
                                                  f'epoch_{cfg.train_cfg.max_epochs}.pth'))


def main():
    args = parse_args()
    import lt_plugins  # noqa: F401  (registration, compat fixes)
    for variant in args.variants:
        resolve(variant)                       # fail on a bad name before any training
    ds = args.dataset
    root = osp.join(args.work_dir, ds)
    ce_cfg = f'configs/baselines/ce_resnet32-cifar_1xb128_{ds}-cpu.py'
    iem_cfg = f'configs/iem/iem_resnet32-cifar_1xb128_{ds}-cpu.py'
    results = dict(dataset=ds, quick=args.quick, seed=args.seed, runs={})
    out = osp.join(args.work_dir, f'bench_iem_accuracy_{ds}.json')
    previous = {}    # runs of an earlier call with the same work dir: kept, unless re-run
    if osp.isfile(out):
        with open(out) as f:
            earlier = json.load(f)
        if (earlier.get('quick'), earlier.get('seed')) == (args.quick, args.seed):
            previous = earlier.get('runs', {})

    ce_ckpt = args.ce_checkpoint or f'work_dirs/bench_ce_{ds}/epoch_30.pth'
    reuse = not args.quick and osp.isfile(ce_ckpt)
    results['runs']['ce'] = run(ce_cfg, osp.join(root, 'ce'), f'{ds}-ce', {}, args,
                                ce_ckpt if reuse else None)
    for variant in args.variants:
        overrides = resolve(variant)
        source = overrides.pop('__eval_of__', None)
        if source is not None:   # evaluate a trained variant's checkpoint, read differently
            # the trained variant's own overrides first (e.g. no-rsa's neck), then the reading
            overrides = dict(resolve(source), **overrides)
            trained = results['runs'].get(source, previous.get(source, {})).get('checkpoint')
            if not (trained and osp.isfile(trained)):
                raise SystemExit(f'variant {variant!r} evaluates {source!r}: list {source!r} '
                                 'before it in --variants (or train it first in this '
                                 'work dir)')
            results['runs'][variant] = run(iem_cfg, osp.join(root, variant),
                                           f'{ds}-iem-{variant}', overrides, args, trained)
            results['runs'][variant]['evaluates'] = source
            continue
        work_dir = osp.join(root, variant)
        trained = osp.join(work_dir, 'epoch_1.pth' if args.quick else 'epoch_30.pth')
        if args.reuse_trained and osp.isfile(trained):
            result = run(iem_cfg, work_dir, f'{ds}-iem-{variant}', overrides, args, trained)
            result['wall_s'] = previous.get(variant, {}).get('wall_s', 0.0)
            result['reused'] = True
            results['runs'][variant] = result
            continue
        results['runs'][variant] = run(iem_cfg, work_dir, f'{ds}-iem-{variant}', overrides,
                                       args)

    results['runs'] = dict(previous, **results['runs'])
    iem_runs = {k: v for k, v in results['runs'].items() if k != 'ce'}
    chosen = max(iem_runs, key=lambda k: iem_runs[k]['val'].get('top1', float('-inf')))
    results['chosen_on_val'] = chosen
    keys = ('top1', 'many', 'medium', 'few')

    def fmt(split: dict) -> str:
        return ''.join(f'{split.get(k, float("nan")):>9.2f}' for k in keys)

    print(f'{ds}: top-1 (%) on val | test; the IEM reading is chosen on val overall')
    print(f'{"run":<22}' + ''.join(f'{k:>9}' for k in keys) + ' |' +
          ''.join(f'{k:>9}' for k in keys) + f'{"train s":>10}')
    for key, r in results['runs'].items():
        mark = ' *' if key == chosen else ''
        print(f'{(key + mark):<22}{fmt(r["val"])} |{fmt(r["test"])}{r["wall_s"]:>10.0f}')
    delta = (results['runs'][chosen]['test'].get('top1', float('nan')) -
             results['runs']['ce']['test'].get('top1', float('nan')))
    results['test_top1_gain_over_ce'] = delta
    print(f'IEM ({chosen}) - CE on test overall: {delta:+.2f} points')
    os.makedirs(args.work_dir, exist_ok=True)
    with open(out, 'w') as f:
        json.dump(results, f, indent=2)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
