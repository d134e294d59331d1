"""Merge benchmark summaries of the same arms run with different seeds (e.g. one seed per
machine) into one summary, as if the runner had been given all the seeds at once."""
from typing import Dict, List, Sequence, Tuple

from .report import META_FIELDS, SHOTS, aggregate_arm, choose_methods

#: fields that must agree between the summaries merged
_SAME = ('dataset', 'dataset_args', 'schedule', 'quick')


def _records(name: str, entry: dict, source: str) -> Dict[int, dict]:
    """``{seed: record}`` of one arm of one summary. Summaries written before per-seed
    records were kept hold one usable reading per seed (the chosen one) and only when they
    have a single seed."""
    if 'per_seed' in entry:
        return {int(s): r for s, r in entry['per_seed'].items()}
    if len(entry['seeds']) != 1:
        raise ValueError(
            f'{source}: arm {name} averages seeds {entry["seeds"]} and keeps no per-seed '
            'values (written before they were kept); re-run tools/benchmark/run.py on its '
            'work dir (finished stages are reused) to rewrite it')
    shots = {split: {k: entry[split][k] for k in SHOTS if k in entry[split]}
             for split in ('val', 'test')}
    reading = dict(shots, test_per_class=entry.get('test_per_class'))
    return {entry['seeds'][0]: dict(readings={entry['reading']: reading},
                                    wall_s=entry['wall_s'], step_ratio=entry.get('step_ratio'),
                                    train_counts=entry.get('train_counts'))}


def merge_summaries(summaries: Sequence[Tuple[str, dict]]) -> dict:
    """One summary from ``(source name, summary)`` pairs that share dataset, schedule and
    quick mode and hold disjoint seeds of each arm (a seed in two summaries is taken once
    when its numbers agree: the runner reuses a finished stage in every later run). Per arm
    the reading is chosen again on the mean val top-1 of all its seeds, among the readings
    every seed has; methods are chosen again on val. Arms keep the order of their first
    appearance."""
    if not summaries:
        raise ValueError('nothing to merge: give at least one summary JSON')
    first_src, first = summaries[0]
    for src, s in summaries[1:]:
        for key in _SAME:
            if s.get(key) != first.get(key):
                raise ValueError(f'{src}: {key} is {s.get(key)!r} but {first_src} has '
                                 f'{first.get(key)!r}; merge only runs of the same protocol')
    per_arm: Dict[str, Dict[int, dict]] = {}
    meta: Dict[str, dict] = {}
    meta_source: Dict[str, str] = {}
    origin: Dict[Tuple[str, int], str] = {}
    for src, s in summaries:
        for name, entry in s['arms'].items():
            m = dict({k: entry.get(k) for k in META_FIELDS}, name=name)
            if name in meta and meta[name]['stages'] != m['stages']:
                raise ValueError(f'{src}: arm {name} runs stages {m["stages"]} but '
                                 f'{meta_source[name]} ran {meta[name]["stages"]}; the arm '
                                 'changed between the runs')
            meta.setdefault(name, m)
            meta_source.setdefault(name, src)
            for seed, record in _records(name, entry, src).items():
                if (name, seed) in origin:
                    if record == per_arm[name][seed]:   # one stage result in two summaries
                        continue
                    raise ValueError(f'arm {name} seed {seed} is in both {origin[(name, seed)]}'
                                     f' and {src} with other numbers; drop one of them')
                origin[(name, seed)] = src
                per_arm.setdefault(name, {})[seed] = record
    out_arms = {name: aggregate_arm(meta[name], per_arm[name]) for name in meta}
    out = choose_methods(out_arms)
    seeds: List[int] = sorted({seed for _, seed in origin})
    devices = sorted({str(s.get('device')) for _, s in summaries})
    out.update({k: first.get(k) for k in _SAME}, seeds=seeds,
               merged_from=[src for src, _ in summaries], device=', '.join(devices))
    return out


__all__ = ['merge_summaries']
