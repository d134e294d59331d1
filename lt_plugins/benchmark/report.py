"""Summaries of benchmark results: readings and methods chosen on val, tables, JSON, plots."""
import json
import math
import statistics
from typing import Dict, List, Optional, Sequence

from .arms import Arm

SHOTS = ('top1', 'many', 'medium', 'few')


def _mean_std(values: List[float]) -> tuple:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _seed_record(arm: Arm, seed: int, results: Dict[tuple, dict],
                 baseline_stage: str) -> dict:
    """One seed of one arm: every reading's val / test shots and per-class test accuracy,
    the chain's wall time and its last trained stage's step time against CE's."""
    chain = arm.stage.chain()
    final = results[(seed, chain[-1].key)]
    readings = {}
    for name in arm.reading_names:
        if name not in final['readings']:
            continue
        r = final['readings'][name]
        readings[name] = dict(val={k: r['val'][k] for k in SHOTS if k in r['val']},
                              test={k: r['test'][k] for k in SHOTS if k in r['test']},
                              test_per_class=r.get('test_per_class'))
    wall = sum(results[(seed, st.key)]['wall_s'] for st in chain if (seed, st.key) in results)
    trained = [st for st in chain if st.train]
    base = results.get((seed, baseline_stage))
    ratio = None
    if trained and base and base.get('step_s'):
        mine = results[(seed, trained[-1].key)].get('step_s')
        ratio = mine / base['step_s'] if mine else None
    return dict(readings=readings, wall_s=wall, step_ratio=ratio,
                train_counts=final['readings'][next(iter(readings))].get('train_counts')
                if readings else None)


def aggregate_arm(meta: dict, per_seed: Dict[int, dict]) -> dict:
    """An arm's entry from its per-seed records (:func:`_seed_record`): the reading that all
    seeds have with the best mean val top-1, test / val mean +- std of that reading, mean
    wall time and step ratio. ``meta`` holds method, kind, control_of, description, stages."""
    seeds = sorted(per_seed)
    records = [per_seed[s] for s in seeds]
    readings = [n for n in records[0]['readings']
                if all(n in r['readings'] for r in records)]
    if not readings:
        raise ValueError(f'arm {meta.get("name", "?")}: its seeds {seeds} share no reading; '
                         'run them with the same arm definition')

    def val_mean(name):
        return _mean_std([r['readings'][name]['val'].get('top1') for r in records])[0]
    chosen = max(readings, key=lambda n: (val_mean(n) if val_mean(n) is not None else -1))
    entry = dict({k: meta[k] for k in META_FIELDS}, stages=list(meta['stages']),
                 reading=chosen, readings_val={n: val_mean(n) for n in readings},
                 seeds=seeds, val={}, test={})
    for split in ('val', 'test'):
        for k in SHOTS:
            m, sd = _mean_std([r['readings'][chosen][split].get(k) for r in records])
            if m is not None:
                entry[split][k] = m
                entry[split][k + '_std'] = sd
    entry['wall_s'] = statistics.mean(r['wall_s'] for r in records)
    ratios = [r['step_ratio'] for r in records if r.get('step_ratio')]
    entry['step_ratio'] = statistics.mean(ratios) if ratios else None
    entry['train_counts'] = records[0].get('train_counts')
    pcs = [r['readings'][chosen].get('test_per_class') for r in records]
    if all(pcs):
        entry['test_per_class'] = [
            statistics.mean([p[c] for p in pcs if p[c] is not None])
            if any(p[c] is not None for p in pcs) else None for c in range(len(pcs[0]))]
    entry['per_seed'] = {str(s): per_seed[s] for s in seeds}
    return entry


def choose_methods(out_arms: Dict[str, dict]) -> dict:
    """Per method the arm with the best val top-1 among its non-control arms (a method whose
    arms are all controls has none); marks ``chosen_for_method`` and orders the controls."""
    methods = {}
    for name, entry in out_arms.items():
        if entry['kind'] == 'control':      # a control is never its method's reading
            continue
        best = methods.get(entry['method'])
        if best is None or entry['val'].get('top1', -1) > out_arms[best]['val'].get('top1', -1):
            methods[entry['method']] = name
    for name, entry in out_arms.items():
        entry['chosen_for_method'] = methods.get(entry['method']) == name
    return dict(arms=_controls_after_their_arms(out_arms), methods=methods)


def summarize(arms: Sequence[Arm], seeds: Sequence[int], results: Dict[tuple, dict],
              baseline_stage: str = 'ce') -> dict:
    """Per arm: the reading chosen on mean val top-1, test mean +- std over seeds, wall time
    (all stages of its chain), step-time ratio (its last trained stage against CE's), and the
    per-seed records (so that runs of other seeds can be merged, :mod:`.merge`); per method:
    the arm chosen on val among its non-control arms (a method whose arms here are all
    controls has none). Arms are listed in ``arms`` order, each control right after the arm
    it controls when that arm is there too."""
    out_arms = {}
    for arm in arms:
        final = arm.stage.chain()[-1].key
        per_seed = {s: _seed_record(arm, s, results, baseline_stage) for s in seeds
                    if (s, final) in results}
        if per_seed:
            out_arms[arm.name] = aggregate_arm(arm_meta(arm), per_seed)
    return choose_methods(out_arms)


#: what an arm's entry carries from the arm's definition (besides its name)
META_FIELDS = ('method', 'kind', 'control_of', 'description', 'stages')


def arm_meta(arm: Arm) -> dict:
    return dict(name=arm.name, method=arm.method, kind=arm.kind, control_of=arm.control_of,
                description=arm.description, stages=[st.key for st in arm.stage.chain()])


def _controls_after_their_arms(arms: Dict[str, dict]) -> Dict[str, dict]:
    """``arms`` reordered: each control right after the arm it controls (if present)."""
    def anchored(e):   # a control of a control is placed as a plain arm
        return e.get('control_of') in arms and arms[e['control_of']].get('kind') != 'control'
    placed = [n for n, e in arms.items() if not anchored(e)]
    for name, entry in arms.items():
        if name not in placed:
            target = entry['control_of']
            # after the controlled arm and the controls already placed behind it
            i = placed.index(target) + 1
            while i < len(placed) and arms[placed[i]].get('control_of') == target:
                i += 1
            placed.insert(i, name)
    return {n: arms[n] for n in placed}


def _cell(stats: dict, key: str) -> str:
    if key not in stats:
        return '-'
    std = stats.get(key + '_std')
    return f'{stats[key]:.2f}' + (f' ± {std:.2f}' if std is not None else '')


def markdown_table(summary: dict, title: str = '') -> str:
    """Arms (one row each): val top-1, test overall / many / medium / few, wall, step ratio."""
    lines = []
    if title:
        lines += [title, '']
    lines += ['| arm | method (kind) | reading | val top-1 | test overall | many | medium | '
              'few | wall s | step ratio |',
              '|---|---|---|---|---|---|---|---|---|---|']
    for name, e in summary['arms'].items():
        mark = ' **\\***' if e['chosen_for_method'] else ''
        ratio = f'{e["step_ratio"]:.2f}' if e.get('step_ratio') else '-'
        kind = (f'control of {e["control_of"]}' if e.get('control_of') else e['kind'])
        lines.append(
            f'| {name}{mark} | {e["method"]} ({kind}) | {e["reading"]} | '
            f'{_cell(e["val"], "top1")} | {_cell(e["test"], "top1")} | '
            f'{_cell(e["test"], "many")} | {_cell(e["test"], "medium")} | '
            f'{_cell(e["test"], "few")} | {e["wall_s"]:.0f} | {ratio} |')
    lines += ['', '\\* the arm reported for its method, chosen on validation top-1 (mean over '
              'seeds) among its arms that are not controls; a reading column other than '
              '`default` was chosen on validation too.']
    return '\n'.join(lines)


def plot_shots(summary: dict, path: str, title: str = '') -> None:
    """Grouped bars: many / medium / few test top-1 per arm."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    names = list(summary['arms'])
    shots = [k for k in ('many', 'medium', 'few')
             if any(k in summary['arms'][n]['test'] for n in names)]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) + 2), 4))
    x = np.arange(len(names))
    width = 0.8 / max(len(shots), 1)
    for i, k in enumerate(shots):
        vals = [summary['arms'][n]['test'].get(k, np.nan) for n in names]
        errs = [summary['arms'][n]['test'].get(k + '_std') or 0.0 for n in names]
        ax.bar(x + (i - (len(shots) - 1) / 2) * width, vals, width, yerr=errs, label=k)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha='right')
    ax.set_ylabel('test top-1 (%)')
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_per_class(summary: dict, path: str, title: str = '', top: int = 3) -> List[str]:
    """Per-class test accuracy against training count for the ``top`` arms (by val top-1)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    arms = [n for n, e in summary['arms'].items() if e.get('test_per_class')
            and e.get('train_counts')]
    arms.sort(key=lambda n: -summary['arms'][n]['val'].get('top1', -1))
    arms = arms[:top]
    fig, ax = plt.subplots(figsize=(6, 4))
    for n in arms:
        e = summary['arms'][n]
        pairs = sorted((c, a) for c, a in zip(e['train_counts'], e['test_per_class'])
                       if a is not None)
        ax.plot([p[0] for p in pairs], [p[1] for p in pairs], 'o-', label=n, alpha=0.8)
    ax.set_xscale('log')
    from matplotlib.ticker import NullFormatter
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel('training images of the class')
    ax.set_ylabel('test accuracy (%)')
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return arms


def write_summary(summary: dict, base: str, table: str, plot_title: str) -> None:
    """``base``.json / .md and, when there are arms, the two plots next to them."""
    with open(base + '.json', 'w') as f:
        json.dump(summary, f, indent=1)
    with open(base + '.md', 'w') as f:
        f.write(table + '\n')
    if summary['arms']:
        plot_shots(summary, base + '_shots.png', plot_title)
        plot_per_class(summary, base + '_per_class.png', plot_title)


def best_arm(summary: dict, method: Optional[str] = None) -> str:
    """The arm chosen on val (for ``method``, or overall), never a control."""
    if method is not None:
        return summary['methods'][method]
    return max((n for n, e in summary['arms'].items() if e.get('kind') != 'control'),
               key=lambda n: summary['arms'][n]['val'].get('top1', -1))
