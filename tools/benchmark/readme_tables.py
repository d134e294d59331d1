"""Generate the README's results table from JSON, check it, or update the JSON from a run.

    python tools/benchmark/readme_tables.py --check     # exit 1 if README and JSON disagree
    python tools/benchmark/readme_tables.py --write     # rewrite the README block
    python tools/benchmark/readme_tables.py --update-from work_dirs/benchmark/.../X.json \\
        --column cifar10-lt --write                     # cells of rows with an `arm`

The table lives between ``<!-- results-table: PATH -->`` and ``<!-- /results-table -->`` in
README.md, PATH being the JSON (relative to the repository) that backs it: ``columns``
(key, label), ``rows`` (label, optional ``arm`` of ``tools/benchmark/run.py``, ``cells`` per
column: ``top1`` [``top1_std``] / ``many`` / ``medium`` [/ ``few``], optional ``note``) and a
``provenance`` per column. ``--update-from`` takes a ``run.py`` summary JSON and replaces
the cells of every row whose arm it holds (test split, the reading chosen on validation),
recording the run in the column's provenance.
"""
import argparse
import json
import os.path as osp
import re
import sys
from typing import Dict, List, Tuple

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
README = osp.join(REPO, 'README.md')
BLOCK = re.compile(r'<!-- results-table: (?P<path>\S+) -->\n(?P<body>.*?)<!-- /results-table -->',
                   re.S)


def render_cell(cell: dict) -> str:
    """``top1 [± std] / many / medium [/ few] [note]`` with two decimals."""
    if not cell:
        return ''
    top1 = f'{cell["top1"]:.2f}'
    if cell.get('top1_std') is not None:
        top1 += f' ± {cell["top1_std"]:.2f}'
    parts = [top1] + [f'{cell[k]:.2f}' for k in ('many', 'medium', 'few') if k in cell]
    text = ' / '.join(parts)
    if cell.get('note'):
        text += f' {cell["note"]}'
    return text


def render(table: dict) -> str:
    """The markdown table of a results JSON (header, one line per row)."""
    cols = table['columns']
    lines = ['| run | ' + ' | '.join(c['label'] for c in cols) + ' |',
             '|---|' + '---|' * len(cols)]
    for row in table['rows']:
        cells = [render_cell(row['cells'].get(c['key'], {})) for c in cols]
        lines.append('|' + '|'.join(f' {c} ' if c else ' ' for c in [row['label']] + cells)
                     + '|')
    return '\n'.join(lines) + '\n'


def blocks(text: str) -> List[Tuple[str, str, Tuple[int, int]]]:
    """``(json path, table text, span)`` of every results block of the README text."""
    return [(m['path'], m['body'], m.span('body')) for m in BLOCK.finditer(text)]


def check(readme: str = README) -> List[str]:
    """Disagreements between README blocks and their JSON (empty when they agree)."""
    with open(readme) as f:
        text = f.read()
    found = blocks(text)
    if not found:
        return [f'{readme} has no <!-- results-table: PATH --> block']
    problems = []
    for path, body, _ in found:
        with open(osp.join(REPO, path)) as f:
            want = render(json.load(f))
        if body != want:
            problems.append(f'README block of {path} differs from the table generated from it; '
                            'run tools/benchmark/readme_tables.py --write')
    return problems


def write(readme: str = README) -> None:
    with open(readme) as f:
        text = f.read()
    for path, _, (start, end) in reversed(blocks(text)):
        with open(osp.join(REPO, path)) as f:
            text = text[:start] + render(json.load(f)) + text[end:]
    with open(readme, 'w') as f:
        f.write(text)


def update_from(table: dict, summary: dict, column: str) -> int:
    """Replace the ``column`` cells of rows whose arm ``summary`` (run.py JSON) holds."""
    if column not in [c['key'] for c in table['columns']]:
        raise ValueError(f'--column {column!r} is not a column of the table '
                         f'({[c["key"] for c in table["columns"]]})')
    n = 0
    for row in table['rows']:
        arm = summary['arms'].get(row.get('arm'))
        if arm is None:
            continue
        test = arm['test']
        cell = {k: round(test[k], 2) for k in ('top1', 'many', 'medium', 'few') if k in test}
        if len(arm['seeds']) > 1:
            cell['top1_std'] = round(test['top1_std'], 2)
        row['cells'][column] = cell
        n += 1
    table.setdefault('provenance', {})[column] = (
        f'tools/benchmark/run.py, {summary["dataset"]}, {summary["schedule"]} schedule, seeds '
        f'{summary["seeds"]}; test split, reading chosen on validation')
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--check', action='store_true')
    p.add_argument('--write', action='store_true')
    p.add_argument('--update-from', default=None, help='a tools/benchmark/run.py JSON')
    p.add_argument('--column', default=None)
    p.add_argument('--table', default='benchmarks/results/readme_cpu.json')
    p.add_argument('--readme', default=README)
    args = p.parse_args(argv)
    if args.update_from:
        if not args.column:
            raise SystemExit('--update-from needs --column')
        path = osp.join(REPO, args.table)
        with open(path) as f:
            table = json.load(f)
        with open(args.update_from) as f:
            n = update_from(table, json.load(f), args.column)
        with open(path, 'w') as f:
            json.dump(table, f, indent=1, ensure_ascii=False)
            f.write('\n')
        print(f'{n} cells of {args.column} updated in {args.table}')
    if args.write:
        write(args.readme)
    problems = check(args.readme)
    for line in problems:
        print(line)
    if args.check and problems:
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
