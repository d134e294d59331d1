"""Accuracy of AFA + LBLS against CE, before and after cRT, with the 30-epoch CPU schedule.

    taskset -c 0 env OMP_NUM_THREADS=1 python tools/benchmark/bench_afa_accuracy.py \
        [--datasets cifar10-lt-ir100 fashion-mnist-lt-ir100] \
        [--cifar-root ../shared/data/cifar-10-batches-py] \
        [--fmnist-root ../shared/data/fashion-mnist] [--with-ce] [--collect-only] \
        [--out work_dirs/bench_afa_accuracy.json] [--cfg-options k=v ...]

For each dataset: trains ``configs/afa/afa_resnet32-cifar_1xb128_<dataset>-cpu.py``
(30 epochs, LBLS t = 10), then its cRT stage ``afa-crt_...`` (10 epochs, class-balanced)
from the last stage-1 checkpoint, and tests both with ``tools/test.py`` (ShotAccuracy:
overall top-1 and many / medium / few). The CE and CE + cRT numbers come from
``tools/benchmark/ce_crt.sh`` (its ``work_dirs/bench_ce_crt_<dataset>.json``); with
``--with-ce`` the script runs it first when that file is missing. ``--collect-only`` skips
all training and only tabulates existing results. Prints one table per dataset and writes
all numbers as JSON.

Long: about 30 + 10 CPU epochs per method and dataset (hours on one core). Not part of the
test suite.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SPLITS = ('top1', 'many', 'medium', 'few')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+',
                        default=['cifar10-lt-ir100', 'fashion-mnist-lt-ir100'])
    parser.add_argument('--cifar-root',
                        default=osp.join(ROOT, '..', 'shared', 'data', 'cifar-10-batches-py'))
    parser.add_argument('--fmnist-root',
                        default=osp.join(ROOT, '..', 'shared', 'data', 'fashion-mnist'))
    parser.add_argument('--with-ce', action='store_true',
                        help='run tools/benchmark/ce_crt.sh when its results are missing')
    parser.add_argument('--collect-only', action='store_true')
    parser.add_argument('--python', default=sys.executable)
    parser.add_argument('--out', default=osp.join(ROOT, 'work_dirs', 'bench_afa_accuracy.json'))
    parser.add_argument('--cfg-options', nargs='*', default=[])
    return parser.parse_args()


def data_options(dataset, root):
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={root}', f'{loader}.num_workers=0']
        if dataset.startswith('cifar'):
            opts.append(f'{loader}.dataset.verify_md5=False')
    return opts


def run(cmd):
    print('+', ' '.join(cmd), flush=True)
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return round(time.time() - start)


def shot(metrics):
    """``{'top1', 'many', 'medium', 'few'}`` from ShotAccuracy's keys (any prefix)."""
    out = {}
    for key, value in metrics.items():
        name = key.split('/')[-1]
        if name in SPLITS:
            out[name] = float(value)
    return out


def afa_stage(args, dataset, root):
    py = args.python
    cfg1 = f'configs/afa/afa_resnet32-cifar_1xb128_{dataset}-cpu.py'
    cfg2 = f'configs/afa/afa-crt_resnet32-cifar_1xb128_{dataset}-cpu.py'
    dir1 = f'work_dirs/bench_afa_{dataset}'
    dir2 = f'work_dirs/bench_afa-crt_{dataset}'
    opts = data_options(dataset, root) + list(args.cfg_options)
    walls = {}
    if not args.collect_only:
        walls['afa_wall_s'] = run([py, 'tools/train.py', cfg1, '--work-dir', dir1,
                                   '--cfg-options', *opts])
        walls['afa_crt_wall_s'] = run([py, 'tools/train.py', cfg2, '--work-dir', dir2,
                                       '--cfg-options', *opts,
                                       f'load_from={dir1}/epoch_30.pth'])
        run([py, 'tools/test.py', cfg1, f'{dir1}/epoch_30.pth', '--work-dir', dir1,
             '--out', f'{dir1}/test.json', '--cfg-options', *opts])
        run([py, 'tools/test.py', cfg2, f'{dir2}/epoch_10.pth', '--work-dir', dir2,
             '--out', f'{dir2}/test.json', '--cfg-options', *opts])
    results = {}
    for name, path in (('afa', f'{dir1}/test.json'), ('afa_crt', f'{dir2}/test.json')):
        full = osp.join(ROOT, path)
        results[name] = shot(json.load(open(full))) if osp.exists(full) else None
    return results, walls


def ce_stage(args, dataset, root):
    path = osp.join(ROOT, 'work_dirs', f'bench_ce_crt_{dataset}.json')
    if not osp.exists(path) and args.with_ce and not args.collect_only:
        run(['bash', 'tools/benchmark/ce_crt.sh', dataset, root, *args.cfg_options])
    if not osp.exists(path):
        return {'ce': None, 'ce_crt': None}
    data = json.load(open(path))
    return {'ce': shot(data['ce']), 'ce_crt': shot(data['crt'])}


def table(dataset, res):
    lines = [f'{dataset} (ResNet-32, 30-epoch CPU schedule; top-1 %)',
             f"{'method':14s}" + ''.join(f'{s:>9s}' for s in ('overall', 'many', 'medium',
                                                             'few'))]
    for name, label in (('ce', 'CE'), ('afa', 'AFA + LBLS'), ('ce_crt', 'CE + cRT'),
                        ('afa_crt', 'AFA + cRT')):
        row = res.get(name)
        cells = ''.join(f'{row[s]:9.2f}' if row and s in row else f"{'-':>9s}"
                        for s in SPLITS)
        lines.append(f'{label:14s}{cells}')
    for a, b, label in (('afa', 'ce', 'AFA - CE'), ('afa_crt', 'ce_crt', 'AFA-CE (cRT)')):
        if res.get(a) and res.get(b):
            lines.append(f'{label:14s}' + ''.join(
                f'{res[a][s] - res[b][s]:+9.2f}' if s in res[a] and s in res[b]
                else f"{'-':>9s}" for s in SPLITS))
    return '\n'.join(lines)


def main():
    args = parse_args()
    roots = {'cifar10-lt-ir100': args.cifar_root, 'fashion-mnist-lt-ir100': args.fmnist_root}
    out = {}
    for dataset in args.datasets:
        if dataset not in roots:
            raise SystemExit(f'unknown dataset {dataset!r}; choose from {sorted(roots)}')
        root = osp.abspath(roots[dataset])
        res = ce_stage(args, dataset, root)
        afa, walls = afa_stage(args, dataset, root)
        res.update(afa)
        res.update(walls)
        out[dataset] = res
        print(table(dataset, res), flush=True)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=2)
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
