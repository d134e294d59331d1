"""STG vs cRT benchmark on the CPU schedule, from one stage-1 checkpoint.

Runs (``tools/train.py`` / ``tools/test.py`` subprocesses, one after another):

1. stage 1 ``stg-stage1_..._{dataset}-cpu.py`` (mixup, 30 epochs) unless ``--stage1-ckpt``;
2. stage 2 ``stg-stage2_...-cpu.py`` (generator, 10 epochs) per seed;
3. stage 3 per seed from the same checkpoints, once per ``--arms`` entry (``ARMS``): cRT
   (``model.head.augment='none'``, the same optimiser / sampler / epochs) and the cRT + STG
   readings (``augment='stg'`` with lambda 1.5 / 1.0 / 0.5, or without the mean); each is
   tested on the balanced validation split and on the test split, and the STG reading is
   chosen on the mean validation top-1 only;
   ``--with-baseline-crt`` also runs the package's own cRT config (SGD, lr 0.1) on the
   stage-1 checkpoint for reference;

then tests every stage-3 model and prints overall / many / medium / few top-1 with the wall
time of each stage, writing the same numbers to ``work_dirs/bench_stg_{dataset}.json``.
``--cache N`` trains stages 2/3 on cached features (``FeatureCacheHook``, N views);
``--speed-only --stage2-ckpt CKPT`` times stage-3 epochs live vs cached and reports the
speed-up (``work_dirs/bench_stg_speed_{dataset}.json``).

    python tools/benchmark/bench_stg.py cifar10-lt-ir100 /work/shared/data/cifar-10-batches-py \\
        --seeds 0 1 2
    python tools/benchmark/bench_stg.py fashion-mnist-lt-ir100 /work/shared/data/fashion-mnist
On a shared CPU pin it: ``taskset -c 0 env OMP_NUM_THREADS=1 python tools/benchmark/...``.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CFG = 'configs/stg/stg-stage{s}_resnet32-cifar_1xb128_{d}-cpu.py'
BASELINE_CRT = 'configs/baselines/crt_resnet32-cifar_1xb128_{d}-cpu.py'
# Stage-3 arms, all from the same stage-2 checkpoint of a seed (cfg-options on top of the
# stage-3 config). 'crt' is the control; the STG readings are the paper's (lambda 1.5), the
# other end of the paper's lambda grid {0.5, 1, 1.5}, and the variance-only diagnostic (the
# Eq. 1 mean of a head sample is the offset to its class centre, so for a tail sample with a
# head token ``mu`` points at that head class). The STG reading is chosen on validation.
ARMS: Dict[str, List[str]] = {
    'crt': ['model.head.augment=none'],
    'stg': ['model.head.augment=stg', 'model.head.lam=1.5'],
    'stg-lam0.5': ['model.head.augment=stg', 'model.head.lam=0.5'],
    'stg-lam1.0': ['model.head.augment=stg', 'model.head.lam=1.0'],
    'stg-nomean': ['model.head.augment=stg', 'model.head.lam=1.5', 'model.head.use_mean=False'],
    # issue 19: the Table 7 controls under the same protocol (values of the -gaussian /
    # -dropout configs) and the token chosen by the stage-1 classifier
    'gaussian': ['model.head.augment=gaussian', 'model.head.noise_std=1.0'],
    'dropout': ['model.head.augment=dropout', 'model.head.dropout_p=0.3'],
    'stg-tokencls': ['model.head.augment=stg', 'model.head.lam=1.5',
                     'model.head.token_source=classifier'],
    'stg-lam0.5-tokencls': ['model.head.augment=stg', 'model.head.lam=0.5',
                            'model.head.token_source=classifier'],
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='STG vs cRT, CPU schedule')
    p.add_argument('dataset', choices=['cifar10-lt-ir100', 'fashion-mnist-lt-ir100'])
    p.add_argument('data_root')
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--stage1-ckpt', default=None, help='reuse this stage-1 checkpoint')
    p.add_argument('--cache', type=int, default=0,
                   help='train stages 2/3 on N cached views (0: live backbone)')
    p.add_argument('--with-baseline-crt', action='store_true')
    p.add_argument('--arms', nargs='+', default=['crt', 'stg'], choices=list(ARMS),
                   help='stage-3 arms per seed (crt is the control; the reported STG '
                   'reading is the arm with the best mean validation top-1)')
    p.add_argument('--speed-only', action='store_true',
                   help='only time one stage-3 epoch live vs cached (needs --stage1-ckpt '
                   'or a finished stage 1, and a stage-2 checkpoint via --stage2-ckpt)')
    p.add_argument('--stage2-ckpt', default=None)
    p.add_argument('--speed-epochs', type=int, default=2)
    p.add_argument('--subset-stride', type=int, default=1,
                   help='--speed-only: time on every k-th training image only')
    p.add_argument('--smoke', action='store_true',
                   help='mechanics only: 1 epoch per stage on every 8th training image, '
                   '200 test images (numbers meaningless)')
    p.add_argument('--work-dir', default='work_dirs')
    p.add_argument('--python', default=sys.executable)
    return p.parse_args(argv)


SMOKE = False
SMOKE_TRAIN = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=100',
               'default_hooks.checkpoint.interval=1',
               'train_dataloader.dataset.indices=[' + ','.join(map(str, range(0, 12000, 8))) +
               ']']
SMOKE_TEST = ['test_dataloader.dataset.indices=[' + ','.join(map(str, range(0, 10000, 50))) +
              ']']


def epochs(config: str) -> int:
    """``train_cfg.max_epochs`` of a config (names its last checkpoint)."""
    if SMOKE:
        return 1
    from mmengine.config import Config
    return int(Config.fromfile(osp.join(ROOT, config)).train_cfg.max_epochs)


def data_opts(dataset: str, root: str) -> List[str]:
    opts = []
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={root}',
                 f'{split}_dataloader.num_workers=0']
        if dataset.startswith('cifar'):
            opts.append(f'{split}_dataloader.dataset.verify_md5=False')
    return opts


def run(args, cmd: List[str]) -> float:
    start = time.perf_counter()
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.perf_counter() - start


def train(args, config: str, work_dir: str, opts: List[str]) -> float:
    return run(args, [args.python, 'tools/train.py', config, '--work-dir', work_dir,
                      '--cfg-options', *opts, *(SMOKE_TRAIN if SMOKE else [])])


def test(args, config: str, ckpt: str, work_dir: str, opts: List[str],
         split: str = 'test') -> Dict[str, float]:
    """Shot accuracies of ``ckpt`` on the ``split`` ('test' or the balanced 'val')."""
    out = osp.join(work_dir, f'{split}.json')
    split_opts = [] if split == 'test' else [f'test_dataloader.dataset.split={split}']
    run(args, [args.python, 'tools/test.py', config, ckpt, '--work-dir', work_dir,
               '--out', out, '--cfg-options', *opts, *split_opts,
               *(SMOKE_TEST if SMOKE and split == 'test' else [])])
    with open(osp.join(ROOT, out)) as f:
        raw = json.load(f)
    pick = {}
    for name in ('top1', 'many', 'medium', 'few'):
        keys = [k for k in raw if k.split('/')[-1] == name]
        pick[name] = raw[keys[0]] if keys else float('nan')
    return pick


def variant(args, config: str, cache: int, tag: str) -> str:
    """``config`` plus a FeatureCacheHook (``cache`` views) as a generated config file."""
    if cache <= 0:
        return config
    path = osp.join(ROOT, args.work_dir, 'bench_stg_cfgs', f'{tag}.py')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(f"_base_ = ['{osp.join(ROOT, config)}']\n"
                "custom_hooks = [dict(type='ClassCountsHook'), "
                f"dict(type='FeatureCacheHook', num_views={cache})]\n")
    return path


def speed(args, dopts) -> dict:
    """Stage-3 epochs with the live backbone vs cached features, timed in-process.

    Reports seconds per epoch of each mode, the one-off extraction time, and the speed-up of
    the configured stage 3 (``E`` epochs): ``E * live / (extract + E * cached)``.
    """
    sys.path.insert(0, ROOT)
    import lt_plugins  # noqa: F401
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    from lt_plugins.engine.runner_utils import set_dataloader_defaults

    class EpochTimer(Hook):
        priority = 'LOWEST'

        def __init__(self):
            self.times = []

        def before_train_epoch(self, runner):
            self._t = time.perf_counter()

        def after_train_epoch(self, runner):
            self.times.append(time.perf_counter() - self._t)

    s3 = CFG.format(s=3, d=args.dataset)
    n_epochs = epochs(s3)
    res = dict(epochs_in_config=n_epochs, speed_epochs=args.speed_epochs,
               subset_stride=args.subset_stride)
    for mode, n in (('live', 0), ('cached', 1)):
        cfg = Config.fromfile(osp.join(ROOT, variant(args, s3, n, f'speed_{mode}')))
        opts = {}
        for o in dopts:
            k, v = o.split('=', 1)
            opts[k] = False if v == 'False' else (0 if v == '0' else v)
        opts.update({'load_from': args.stage2_ckpt, 'train_cfg.max_epochs': args.speed_epochs,
                     'train_cfg.val_interval': 1000, 'default_hooks.checkpoint.interval': 1000,
                     'work_dir': osp.join(args.work_dir, f'bench_stg_speed_{mode}')})
        cfg.merge_from_dict(opts)
        if args.subset_stride > 1:  # every k-th training image (all classes keep a share)
            from mmpretrain.registry import DATASETS
            n = len(DATASETS.build(cfg.train_dataloader.dataset))
            cfg.merge_from_dict({'train_dataloader.dataset.indices':
                                 list(range(0, n, args.subset_stride))})
        set_dataloader_defaults(cfg, False, True)
        runner = Runner.from_cfg(cfg)
        timer = EpochTimer()
        runner.register_hook(timer)
        runner.train()
        cache_hook = [h for h in runner.hooks if type(h).__name__ == 'FeatureCacheHook']
        res[f'{mode}_epoch_s'] = sum(timer.times) / len(timer.times)
        if cache_hook:
            res['extract_s'] = cache_hook[0].extract_seconds
    res['speedup_per_epoch'] = res['live_epoch_s'] / res['cached_epoch_s']
    res['speedup_stage3'] = n_epochs * res['live_epoch_s'] / (
        res['extract_s'] + n_epochs * res['cached_epoch_s'])
    return res


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    global SMOKE
    SMOKE = args.smoke
    d, wd = args.dataset, args.work_dir
    dopts = data_opts(d, args.data_root)
    if args.speed_only:
        if args.stage2_ckpt is None:
            raise SystemExit('--speed-only needs --stage2-ckpt (any stage-2 checkpoint).')
        res = speed(args, dopts)
        print(json.dumps(res, indent=2))
        out = osp.join(ROOT, wd, f'bench_stg_speed_{d}.json')
        os.makedirs(osp.dirname(out), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(res, f, indent=2)
        return res
    s1, s2, s3 = (CFG.format(s=s, d=d) for s in (1, 2, 3))
    result = dict(dataset=d, cache_views=args.cache, seeds={}, wall_s={})
    ckpt1 = args.stage1_ckpt
    if ckpt1 is None:
        w1 = osp.join(wd, f'bench_stg_stage1_{d}')
        result['wall_s']['stage1'] = train(args, s1, w1, dopts)
        ckpt1 = osp.join(w1, f'epoch_{epochs(s1)}.pth')
    result['stage1_ckpt'] = ckpt1
    if args.with_baseline_crt:
        wb = osp.join(wd, f'bench_stg_baseline_crt_{d}')
        cfg_b = BASELINE_CRT.format(d=d)
        t = train(args, cfg_b, wb, dopts + [f'load_from={ckpt1}'])
        result['baseline_crt'] = dict(wall_s=t, **test(args, cfg_b, osp.join(wb, 'epoch_10.pth'),
                                                       wb, dopts))
    for seed in args.seeds:
        seed_opts = dopts + [f'randomness.seed={seed}']
        s2v = variant(args, s2, args.cache, f'stage2_{d}_cache{args.cache}')
        s3v = variant(args, s3, args.cache, f'stage3_{d}_cache{args.cache}')
        w2 = osp.join(wd, f'bench_stg_stage2_{d}_s{seed}')
        t2 = train(args, s2v, w2, seed_opts + [f'load_from={ckpt1}'])
        ckpt2 = osp.join(w2, f'epoch_{epochs(s2)}.pth')
        entry = dict(stage2_wall_s=t2)
        for name in args.arms:
            w3 = osp.join(wd, f'bench_stg_stage3_{name}_{d}_s{seed}')
            t3 = train(args, s3v, w3, seed_opts + [f'load_from={ckpt2}', *ARMS[name]])
            ckpt3 = osp.join(w3, f'epoch_{epochs(s3)}.pth')
            entry[name] = dict(wall_s=t3, **test(args, s3, ckpt3, w3, dopts + ARMS[name]))
            entry[name]['val'] = test(args, s3, ckpt3, w3, dopts + ARMS[name], split='val')
        result['seeds'][seed] = entry

    def values(name, key, split=None):
        return [(e[name][split] if split else e[name])[key] for e in result['seeds'].values()]

    def mean(name, key, split=None):
        return statistics.mean(values(name, key, split))

    def std(name, key):
        vals = values(name, key)
        return statistics.stdev(vals) if len(vals) > 1 else 0.0

    print(f'\nSTG vs cRT on {d} (CPU schedule, seeds {args.seeds}, cache={args.cache})')
    stg_arms = [a for a in args.arms if a != 'crt']
    chosen = max(stg_arms, key=lambda a: mean(a, 'top1', 'val')) if stg_arms else None
    result['chosen_on_val'] = chosen
    print(f'{"method":<14}{"val":>8}{"overall":>9}{"+-":>6}{"many":>8}{"medium":>8}'
          f'{"few":>8}{"stage-3 s":>11}')
    rows = [(('cRT + ' + a) if a != 'crt' else 'cRT', a) for a in args.arms]
    if 'baseline_crt' in result:
        b = result['baseline_crt']
        print(f'{"cRT (SGD cfg)":<14}{"":>8}{b["top1"]:9.2f}{"":>6}{b["many"]:8.2f}'
              f'{b["medium"]:8.2f}{b["few"]:8.2f}{b["wall_s"]:11.0f}')
    summary = {}
    for label, name in rows:
        summary[name] = {k: mean(name, k) for k in ('top1', 'many', 'medium', 'few', 'wall_s')}
        summary[name].update(val_top1=mean(name, 'top1', 'val'), top1_std=std(name, 'top1'))
        s = summary[name]
        mark = ' *' if name == chosen else ''
        print(f'{label + mark:<14}{s["val_top1"]:8.2f}{s["top1"]:9.2f}{s["top1_std"]:6.2f}'
              f'{s["many"]:8.2f}{s["medium"]:8.2f}{s["few"]:8.2f}{s["wall_s"]:11.0f}')
    if chosen:
        gain = summary[chosen]['top1'] - summary['crt']['top1'] if 'crt' in summary else None
        result['test_top1_gain_over_crt'] = gain
        print(f'* chosen on validation: {chosen}' +
              (f'; test overall gain over cRT {gain:+.2f}' if gain is not None else ''))
    stage2 = [e['stage2_wall_s'] for e in result['seeds'].values()]
    print(f'stage 1: {result["wall_s"].get("stage1", float("nan")):.0f} s, stage 2: '
          f'{sum(stage2) / len(stage2):.0f} s (mean over seeds)')
    result['summary'] = summary
    out = osp.join(ROOT, wd, f'bench_stg_{d}.json')
    os.makedirs(osp.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'wrote {out}')
    return result


if __name__ == '__main__':
    main()
