"""Plot per-class accuracy against the number of training images (PNG).

Reads the per-class file that ``ShotAccuracy(per_class_out='per_class.json')`` (or
``.csv``) writes during a test run, e.g. after::

    python tools/test.py CONFIG CKPT --cfg-options \\
        "test_evaluator.per_class_out=per_class.json"

and draws one point per class (log-scaled training count on x, top-1 accuracy on y),
coloured by shot split, with the split thresholds as vertical lines and each split's
mean accuracy as a horizontal line::

    python tools/analysis/plot_per_class_accuracy.py work_dirs/x/per_class.json \\
        --out per_class.png
"""
import argparse
import csv
import json
import os
import os.path as osp
import sys
from typing import List, Optional, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {'many': 'tab:blue', 'medium': 'tab:orange', 'few': 'tab:green'}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Plot per-class top-1 accuracy against training count from the '
        'per-class file written by ShotAccuracy(per_class_out=...).')
    parser.add_argument('per_class_file', help='per-class accuracies (.json or .csv)')
    parser.add_argument('--out', help='output PNG (default: the input path with .png)')
    parser.add_argument('--many-thr', type=int, default=None,
                        help='many-shot threshold (default: from the JSON file, else 100)')
    parser.add_argument('--few-thr', type=int, default=None,
                        help='few-shot threshold (default: from the JSON file, else 20)')
    parser.add_argument('--title', default=None, help='plot title (default: file name)')
    parser.add_argument('--dpi', type=int, default=150, help='resolution of the PNG')
    return parser.parse_args(argv)


def load_per_class(path: str) -> Tuple[List[dict], dict]:
    """Rows (class_index, class_name, train_count, test_count, accuracy, split) and the
    thresholds stored with them (JSON only)."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found; write it with ShotAccuracy(per_class_out=...) in the '
            'test_evaluator of the config.')
    if path.lower().endswith('.json'):
        with open(path) as f:
            data = json.load(f)
        rows = data['per_class']
        meta = {k: data[k] for k in ('many_thr', 'few_thr') if k in data}
    elif path.lower().endswith('.csv'):
        with open(path, newline='') as f:
            rows = list(csv.DictReader(f))
        meta = {}
    else:
        raise ValueError(f'{path}: expected a .json or .csv file written by ShotAccuracy.')
    for row in rows:
        acc = row.get('accuracy')
        row['accuracy'] = None if acc in (None, '') else float(acc)
        row['train_count'] = int(row['train_count'])
    return rows, meta


def plot(rows: List[dict], out: str, many_thr: int, few_thr: int,
         title: str = '', dpi: int = 150) -> dict:
    """Draw the figure into ``out``; returns per-split (classes plotted, mean accuracy)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    summary = {}
    counts = np.array([r['train_count'] for r in rows])
    for split, color in COLORS.items():
        sel = [r for r in rows if r['split'] == split and r['accuracy'] is not None and
               r['train_count'] > 0]
        if not sel:
            continue
        x = np.array([r['train_count'] for r in sel])
        y = np.array([r['accuracy'] for r in sel])
        mean = float(y.mean())
        summary[split] = (len(sel), mean)
        ax.scatter(x, y, s=14, color=color, alpha=0.75,
                   label=f'{split} ({len(sel)} classes, mean {mean:.1f}%)')
        ax.hlines(mean, x.min(), x.max(), colors=color, linestyles=':', linewidth=1.5)
    ax.set_xscale('log')
    for thr, name in ((few_thr, f'few < {few_thr}'), (many_thr, f'many > {many_thr}')):
        ax.axvline(thr, color='grey', linestyle='--', linewidth=1)
        ax.text(thr, 102, name, ha='center', va='bottom', fontsize=8, color='grey')
    positive = counts[counts > 0]
    if positive.size:
        ax.set_xlim(min(positive.min(), few_thr) / 1.5, max(positive.max(), many_thr) * 1.5)
    ax.set_ylim(-3, 108)
    ax.set_xlabel('training images per class (log scale)')
    ax.set_ylabel('top-1 accuracy (%)')
    ax.set_title(title)
    ax.grid(True, which='both', alpha=0.2)
    if summary:
        ax.legend(loc='best', fontsize=8, framealpha=0.9)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return summary


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    rows, meta = load_per_class(args.per_class_file)
    many_thr = args.many_thr if args.many_thr is not None else meta.get('many_thr', 100)
    few_thr = args.few_thr if args.few_thr is not None else meta.get('few_thr', 20)
    out = args.out or osp.splitext(args.per_class_file)[0] + '.png'
    skipped = sum(r['accuracy'] is None or r['train_count'] <= 0 for r in rows)
    summary = plot(rows, out, many_thr, few_thr,
                   args.title or osp.basename(args.per_class_file), args.dpi)
    for split, (n, mean) in summary.items():
        print(f'{split:>6}: {n:5d} classes, mean top-1 {mean:6.2f}%')
    if skipped:
        print(f'{skipped} classes without test samples or training images not plotted')
    print(f'saved {out}')
    return out


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
