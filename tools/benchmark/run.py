"""One benchmark command: every method (arm) on any registered long-tailed dataset.

    python tools/benchmark/run.py --dataset digits-lt --seeds 0 1 --jobs 2
    python tools/benchmark/run.py --dataset cifar100-lt --ir 100 \\
        --data-root ../shared/data/cifar-100-python --methods ce crt mbj iem stg afa
    python tools/benchmark/run.py --dataset packed --dataset-arg pack_file=c10.npz \\
        --schedule paper --device cuda --jobs 5 --methods ce crt mbj stg afa

Arms (``--list``) come from :mod:`lt_plugins.benchmark.arms` (``register_arm`` adds one);
``--methods`` takes arm names, method names (their default arms), screen names (the round-2
screens of issues 18 / 19 with their controls, e.g. ``mbj-screen-lr``), ``default`` or
``all``. Control arms (CE fine-tuning, a cRT inside a method's pipeline, STG's Table-7 noise)
sit next to the arm they control and are never reported as their method's reading.
Every stage of every seed runs once in its own process, pinned to its own cores
(``--jobs``); stage-1 checkpoints are shared by the arms that start from them; a stage whose
result exists is skipped unless ``--force``. Every arm is tested on the balanced validation
split and the test split; a reading (tau of tau-norm, IEM's memory reads) and the arm
reported per method are chosen on validation. ``--time-feature-cache EPOCHS`` then times
the frozen-backbone stages live vs on cached features; ``--mbj-probe`` runs MBJ's
frozen-feature calibration (:mod:`lt_plugins.benchmark.probe`) on the CE checkpoints. Writes
``<out>/<dataset>.json``, ``.md`` and two
plots (``_shots.png``, ``_per_class.png``).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from lt_plugins.benchmark import (ARMS, BenchmarkRunner, get_dataset_spec,  # noqa: E402
                                  load_results, markdown_table, parse_value, plan,
                                  select_arms, summarize, with_data_root)
from lt_plugins.benchmark.arms import SCREENS  # noqa: E402
from lt_plugins.benchmark.datasets import DATASET_SPECS  # noqa: E402
from lt_plugins.benchmark.report import write_summary  # noqa: E402
from lt_plugins.engine.fast_path import fast_path_from_flags, resolve_fast_path  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', default='digits-lt', help=f'one of {sorted(DATASET_SPECS)}')
    p.add_argument('--ir', type=float, default=None, help='imbalance ratio (imb_factor)')
    p.add_argument('--dataset-arg', action='append', default=[], metavar='KEY=VALUE',
                   help='dataset argument (repeatable), e.g. pack_file=x.npz, n_max=500')
    p.add_argument('--data-root', default=None)
    p.add_argument('--methods', nargs='+', default=['default'])
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--schedule', choices=['cpu', 'paper'], default='cpu')
    p.add_argument('--jobs', type=int, default=1, help='parallel runs, each on its own cores (0: one after another in this process)')
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    amp = p.add_mutually_exclusive_group()
    amp.add_argument('--amp', dest='amp', action='store_true', default=None,
                     help='mixed precision (default: on with --device cuda, and on a CPU '
                     'with native bfloat16; refused on a CPU without)')
    amp.add_argument('--no-amp', dest='amp', action='store_false')
    p.add_argument('--no-channels-last', dest='channels_last', action='store_false',
                   default=None, help='keep the backbone NCHW (default: channels-last on CPU)')
    p.add_argument('--compile', action='store_true', default=None,
                   help='torch.compile the backbone of every stage')
    p.add_argument('--quick', action='store_true',
                   help='1 epoch on a few hundred images per split: a smoke test')
    p.add_argument('--force', action='store_true', help='re-run stages whose result exists')
    p.add_argument('--feature-cache', type=int, default=0, metavar='VIEWS',
                   help='cached features for the frozen-backbone stages that support it')
    p.add_argument('--time-feature-cache', type=int, default=0, metavar='EPOCHS',
                   help='after the run, time EPOCHS epochs of each selected arm\'s final '
                   'frozen-backbone stage (STG stages 2-3) live vs on cached features '
                   '(first seed, in this process) and report the speed-up')
    p.add_argument('--time-stride', type=int, default=1, metavar='K',
                   help='--time-feature-cache on every K-th training image only')
    p.add_argument('--mbj-probe', nargs='*', default=None, metavar='READING',
                   help='after the run, the MBJ frozen-feature probe on each seed\'s CE '
                   'checkpoint (adds the ce arm): the MBJ head alone fine-tuned on cached '
                   'features per reading (none given: all; see lt_plugins/benchmark/probe.py)')
    p.add_argument('--probe-epochs', type=int, default=10,
                   help='--mbj-probe epochs per reading (1 with --quick)')
    p.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'benchmark'))
    p.add_argument('--out', default=None, help='directory of the table / JSON / plots '
                   '(default: the run directory)')
    p.add_argument('--list', action='store_true', help='list the arms and datasets, then exit')
    return p.parse_args(argv)


def list_arms() -> str:
    width = max(len(a) for a in ARMS) + 2
    mwidth = max(len(a.method) for a in ARMS.values()) + 2
    lines = [f'{"arm":<{width}}{"method":<{mwidth}}{"kind":<13}{"default":<9}stages'] + [
        f'{a.name:<{width}}{a.method:<{mwidth}}{a.kind:<13}{"yes" if a.default else "":<9}'
        f'{a.stage.key}' + (f'  (control of {a.control_of})' if a.control_of else '')
        for a in ARMS.values()]
    lines += [f'screen {k}: {" ".join(v)}' for k, v in SCREENS.items()]
    lines.append(f'datasets: {", ".join(sorted(DATASET_SPECS))}')
    return '\n'.join(lines)


def time_cached_stages(args, spec, arms, tasks, runner) -> dict:
    """``--time-feature-cache``: live vs cached epochs of each selected arm's final stage
    that is cacheable (first seed; its parent must have finished)."""
    from lt_plugins.benchmark.runner import quick_indices
    from lt_plugins.benchmark.speed import time_feature_cache
    finals = {a.stage.key for a in arms if a.stage.cacheable}
    out = {}
    for task in tasks:
        if task.seed != args.seeds[0] or task.stage.key not in finals:
            continue
        if task.parent is None or not osp.isfile(task.parent.result_path):
            print(f'[speed] {task.label}: its parent did not finish; not timed', flush=True)
            continue
        with open(task.parent.result_path) as f:
            load_from = json.load(f)['checkpoint']
        res = time_feature_cache(task.stage, spec, args.schedule, task.seed, task.dir,
                                 load_from, args.time_feature_cache,
                                 max(args.feature_cache, 1), args.time_stride,
                                 quick_indices(spec) if args.quick else None, args.device)
        out[task.stage.key] = res
        print(f'[speed] {task.stage.key}: {res["live_epoch_s"]:.2f} s / epoch live, '
              f'{res["cached_epoch_s"]:.2f} s cached (+{res["extract_s"]:.1f} s extraction);'
              f' speed-up {res["speedup_per_epoch"]:.1f}x per epoch, '
              f'{res["speedup_stage"]:.1f}x over its {res["epochs_in_config"]} epochs',
              flush=True)
    return out


def mbj_probe(args, spec, tasks, runner) -> dict:
    """``--mbj-probe``: the frozen-feature MBJ calibration on each seed's CE checkpoint."""
    from lt_plugins.benchmark.probe import run_probe
    from lt_plugins.benchmark.runner import quick_indices
    checkpoints = {}
    for task in tasks:
        if task.stage.key == 'ce' and osp.isfile(task.result_path):
            with open(task.result_path) as f:
                checkpoints[task.seed] = json.load(f)['checkpoint']
    if not checkpoints:
        print('[probe] no CE checkpoint finished: MBJ probe skipped', flush=True)
        return {}
    res = run_probe(spec, args.schedule, checkpoints, osp.join(runner.root, 'mbj-probe'),
                    args.mbj_probe or None, 1 if args.quick else args.probe_epochs,
                    quick_indices(spec) if args.quick else None)
    print(f'MBJ probe (frozen backbone, cached features, seeds {sorted(checkpoints)}); '
          f'chosen on val: {res["chosen_on_val"]}', flush=True)
    print(f'{"reading":<18}{"val top1":>10}{"test top1":>11}{"many":>8}{"medium":>8}'
          f'{"few":>8}', flush=True)
    for name, e in res['readings'].items():
        t = e['test']
        print(f'{name + (" (control)" if e["control"] else ""):<18}{e["val"]["top1"]:>10.2f}'
              f'{t["top1"]:>11.2f}' + ''.join(f'{t.get(k, float("nan")):>8.2f}'
                                              for k in ('many', 'medium', 'few')), flush=True)
    return res


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.list:
        print(list_arms())
        return {}
    dargs = {}
    for item in args.dataset_arg:
        if '=' not in item:
            raise SystemExit(f'--dataset-arg {item!r}: write KEY=VALUE')
        key, value = item.split('=', 1)
        dargs[key] = parse_value(value)
    if args.ir is not None:
        dargs['imb_factor'] = args.ir
    spec = with_data_root(get_dataset_spec(args.dataset, dargs), args.data_root)
    arms = select_arms(args.methods)
    if args.mbj_probe is not None and ARMS['ce'] not in arms:
        arms.append(ARMS['ce'])           # the probe reads the CE checkpoints
    fast = resolve_fast_path(fast_path_from_flags(
        True if args.amp is None and args.device == 'cuda' else args.amp,
        args.channels_last, args.compile), args.device)     # refuses --amp without bfloat16
    amp = fast.amp
    runner = BenchmarkRunner(spec, args.schedule, args.work_dir, args.jobs, args.device,
                             args.amp, args.quick, args.force, args.feature_cache,
                             log=lambda s: print(time.strftime('%H:%M:%S'), s, flush=True),
                             channels_last=args.channels_last, compile=args.compile)
    tasks = plan(arms, args.seeds, runner.root)
    print(f'{spec.tag}: {len(arms)} arms x {len(args.seeds)} seeds = {len(tasks)} stages '
          f'({args.schedule} schedule{", quick" if args.quick else ""}, {args.jobs} jobs, '
          f'{args.device}{", amp" if amp else ""}) under {runner.root}', flush=True)
    stats = runner.run(tasks)
    summary = summarize(arms, args.seeds, load_results(tasks))
    if args.time_feature_cache:
        summary['feature_cache_speed'] = time_cached_stages(args, spec, arms, tasks, runner)
    if args.mbj_probe is not None:
        summary['mbj_probe'] = mbj_probe(args, spec, tasks, runner)
    summary.update(dataset=spec.tag, dataset_args={k: v for k, v in spec.kwargs.items()
                                                   if k != 'data_root'},
                   schedule=args.schedule, quick=args.quick, seeds=args.seeds,
                   device=args.device, amp=amp, channels_last=fast.channels_last,
                   compiled=fast.compile is not None, jobs=args.jobs, run_wall_s=stats['wall_s'],
                   failed_stages=stats['failed'])
    out_dir = args.out or runner.root
    os.makedirs(out_dir, exist_ok=True)
    title = (f'{spec.tag}, {args.schedule} schedule{" (quick)" if args.quick else ""}, '
             f'seeds {args.seeds}: test top-1 (%), mean ± std over seeds')
    table = markdown_table(summary, title)
    base = osp.join(out_dir, spec.tag)
    write_summary(summary, base, table, spec.tag)
    print(table)
    print(f'wall {stats["wall_s"]:.0f} s, {stats["ran"]} stages run, {stats["failed"]} failed;'
          f' wrote {base}.json / .md / _shots.png / _per_class.png', flush=True)
    if stats['failed']:
        raise SystemExit(1)
    return summary


if __name__ == '__main__':
    main()
