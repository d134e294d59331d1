"""Check the model zoo: every entry's weights match their sha256, load weights-only, and
reproduce the metafile's numbers through ``tools/test.py``'s evaluation.

    python tools/zoo_check.py [NAME ...] [--zoo model_zoo] [--data-root DIR]
        [--tolerance 0.01] [--work-dir DIR]

``--data-root`` is where the dataset lives on this machine (the released configs keep their
default ``data_root``); for a ``PackedLT`` config it is the folder of the pack. The
tolerance is in percentage points, on numbers rounded as the metafile rounds them (2
decimals). Prints every metric next to the metafile's and exits 1 when any entry fails.
"""
import argparse
import copy
import os.path as osp
import sys
import tempfile
import time
from typing import Dict, List, Optional

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import importlib.util  # noqa: E402


def _load(name: str):
    path = osp.join(REPO, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'lt_tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


zoo_release = _load('zoo_release')
ZooError = zoo_release.ZooError
_runs = [0]


def set_data_root(cfg, data_root: str) -> None:
    """Every val / test dataset of ``cfg`` reads from ``data_root``."""
    for ds in zoo_release.loader_datasets(cfg, ('val_dataloader', 'test_dataloader')):
        if 'dataset' in ds or 'datasets' in ds:    # a wrapper: its datasets get it
            continue
        ds['data_root'] = osp.abspath(data_root)


def evaluate_entry(zoo: str, entry: dict, data_root: Optional[str] = None,
                   work_dir: Optional[str] = None, verbose: bool = False
                   ) -> Dict[str, Dict[str, float]]:
    """Reproduce an entry's splits: ``{'test': {'top1': ...}, 'val': {...}}``."""
    import torch
    from mmengine.config import Config
    test_tool = _load('test')
    cfg = Config.fromfile(osp.join(zoo, entry['Config']))
    if data_root:
        set_data_root(cfg, data_root)
    if not verbose:
        cfg.log_level = 'WARNING'
    work_dir = work_dir or tempfile.mkdtemp(prefix='zoo-check-')
    splits = [r['Dataset'].rsplit(' ', 1)[-1] for r in entry.get('Results', [])]
    out = {}
    for split in ('test', 'val'):
        if split not in splits:
            continue
        scfg = copy.deepcopy(cfg)
        if split == 'val':   # tools/test.py's evaluation on the val loader (no train loop)
            scfg.test_dataloader = scfg.val_dataloader
            scfg.test_evaluator = scfg.val_evaluator
        _runs[0] += 1
        scfg.experiment_name = (f'zoo_check_{entry["Name"]}_{split}_'
                                f'{time.strftime("%H%M%S")}_{_runs[0]}')
        runner = test_tool.build_runner(scfg, osp.join(zoo, entry['Weights']),
                                        osp.join(work_dir, entry['Name']),
                                        no_pin_memory=not torch.cuda.is_available())
        out[split] = {k.split('/')[-1]: float(v) for k, v in runner.test().items()}
    return out


def check_entry(zoo: str, entry: dict, data_root: Optional[str] = None,
                tolerance: float = 0.01, work_dir: Optional[str] = None,
                verbose: bool = False) -> dict:
    """One entry's report: ``ok``, ``errors`` and the ``rows`` (split, metric, metafile,
    reproduced, difference)."""
    from lt_plugins.compat import load_from_local
    name = entry.get('Name', '?')
    report = dict(name=name, ok=False, errors=[], rows=[])
    for key in ('Weights', 'Config', 'Weights SHA256', 'Results'):
        if not entry.get(key):
            report['errors'].append(f'{name}: the metafile entry has no {key!r}')
    if report['errors']:
        return report
    weights = osp.join(zoo, entry['Weights'])
    for path in (weights, osp.join(zoo, entry['Config'])):
        if not osp.isfile(path):
            report['errors'].append(f'{name}: {path} is missing')
    if report['errors']:
        return report
    sha = zoo_release.sha256_file(weights)
    if sha != entry['Weights SHA256']:
        report['errors'].append(
            f'{name}: sha256 of {weights} is {sha}, the metafile says '
            f'{entry["Weights SHA256"]}: the file was changed or replaced')
        return report
    try:
        released = load_from_local(weights, map_location='cpu')
    except Exception as err:  # noqa: BLE001  (reported as the entry's failure)
        report['errors'].append(f'{name}: the weights-only loader refused {weights}: {err}')
        return report
    if not released.get('state_dict'):
        report['errors'].append(f'{name}: {weights} holds no weights')
        return report
    if 'lt_class_counts' not in released.get('meta', {}):
        report['errors'].append(f'{name}: {weights} has no lt_class_counts in its meta (the '
                                'shot splits need them); release it with tools/zoo_release.py')
        return report
    reproduced = evaluate_entry(zoo, entry, data_root, work_dir, verbose)
    names = {v: k for k, v in zoo_release.METRICS.items()}
    for result in entry['Results']:
        split = result['Dataset'].rsplit(' ', 1)[-1]
        for metric, expected in result['Metrics'].items():
            got = reproduced.get(split, {}).get(names.get(metric, metric))
            if got is None:
                report['errors'].append(f'{name}: {split} {metric} was not reproduced (the '
                                        'evaluation did not report it)')
                continue
            diff = round(got, 2) - float(expected)
            report['rows'].append(dict(split=split, metric=metric, metafile=float(expected),
                                       reproduced=got, diff=diff))
            if abs(diff) > tolerance + 1e-9:
                report['errors'].append(
                    f'{name}: {split} {metric}: metafile {float(expected):.2f}, reproduced '
                    f'{got:.2f} (difference {diff:+.2f} > tolerance {tolerance:g})')
    report['ok'] = not report['errors']
    return report


def check_zoo(zoo: str = zoo_release.DEFAULT_ZOO, names: Optional[List[str]] = None,
              data_root: Optional[str] = None, tolerance: float = 0.01,
              work_dir: Optional[str] = None, verbose: bool = False, log=print) -> List[dict]:
    """Check the named entries (all when ``names`` is empty); returns their reports."""
    zoo = osp.abspath(zoo)
    data = zoo_release.load_metafile(zoo)
    entries = data['Models']
    if names:
        known = {m.get('Name') for m in entries}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ZooError(f'{osp.join(zoo, zoo_release.METAFILE)} has no entries {unknown} '
                           f'(it has {sorted(known)})')
        entries = [m for m in entries if m.get('Name') in names]
    reports = []
    for entry in entries:
        report = check_entry(zoo, copy.deepcopy(entry), data_root, tolerance, work_dir, verbose)
        reports.append(report)
        log(f'{"OK  " if report["ok"] else "FAIL"} {report["name"]}')
        for row in report['rows']:
            log(f'     {row["split"]:<5} {row["metric"]:<28} metafile {row["metafile"]:7.2f}'
                f'  reproduced {row["reproduced"]:7.2f}  ({row["diff"]:+.2f})')
        for error in report['errors']:
            log(f'     error: {error}')
    return reports


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('names', nargs='*', help='entries to check (default: all)')
    p.add_argument('--zoo', default=zoo_release.DEFAULT_ZOO)
    p.add_argument('--data-root', help='the dataset on this machine (default: the configs\')')
    p.add_argument('--tolerance', type=float, default=0.01,
                   help='allowed difference in percentage points (default 0.01)')
    p.add_argument('--work-dir', help='where the evaluations log (default: a temporary dir)')
    p.add_argument('--verbose', action='store_true', help='the runners\' INFO logs too')
    return p.parse_args(argv)


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    try:
        reports = check_zoo(args.zoo, args.names, args.data_root, args.tolerance,
                            args.work_dir, args.verbose)
    except ZooError as err:
        raise SystemExit(f'zoo_check: {err}')
    failed = [r['name'] for r in reports if not r['ok']]
    print(f'{len(reports) - len(failed)}/{len(reports)} entries reproduce their metafile'
          + (f'; failed: {", ".join(failed)}' if failed else ''))
    if failed:
        raise SystemExit(1)
    return reports


if __name__ == '__main__':
    main()
