"""Merge the summaries (``<dataset tag>.json``) of benchmark runs that ran other seeds of the
same arms, e.g. one seed per machine, into one table with mean +- std over all the seeds:

    python tools/benchmark/merge_seeds.py out-s0/fashion-mnist-lt-imb_factor100.json \\
        out-s1/fashion-mnist-lt-imb_factor100.json --out merged/fmnist-3seeds

Readings and methods are chosen again on the mean validation top-1 of all seeds. Writes
``OUT.json``, ``OUT.md`` and the two plots next to them.
"""
import argparse
import json
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from lt_plugins.benchmark import markdown_table  # noqa: E402
from lt_plugins.benchmark.merge import merge_summaries  # noqa: E402
from lt_plugins.benchmark.report import write_summary  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('summaries', nargs='+', help='summary JSON files written by run.py')
    p.add_argument('--out', required=True, help='output path without extension')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    loaded = []
    for path in args.summaries:
        if not osp.isfile(path):
            raise SystemExit(f'{path}: no such summary; give the .json that run.py wrote')
        with open(path) as f:
            loaded.append((path, json.load(f)))
    try:
        merged = merge_summaries(loaded)
    except ValueError as e:
        raise SystemExit(f'merge_seeds: {e}')
    title = (f'{merged["dataset"]}, {merged["schedule"]} schedule'
             f'{" (quick)" if merged["quick"] else ""}, seeds {merged["seeds"]} (merged from '
             f'{len(loaded)} runs): test top-1 (%), mean ± std over seeds')
    partial = [f'{n} ({e["seeds"]})' for n, e in merged['arms'].items()
               if e['seeds'] != merged['seeds']]
    table = markdown_table(merged, title)
    if partial:
        table += '\n\nArms with only some of the seeds: ' + ', '.join(partial) + '.'
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    write_summary(merged, args.out, table, merged['dataset'])
    print(table)
    return merged


if __name__ == '__main__':
    main()
