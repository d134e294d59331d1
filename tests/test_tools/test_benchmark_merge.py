"""Merging benchmark summaries of different seeds (``tools/benchmark/merge_seeds.py``)."""
import copy
import json
import os.path as osp

import numpy as np
import pytest

from lt_plugins.benchmark import select_arms, summarize
from lt_plugins.benchmark.merge import merge_summaries
from tests.test_tools import load_tool

PROTOCOL = dict(dataset='digits-lt-imb_factor25', dataset_args={'imb_factor': 25},
                schedule='cpu', quick=False, device='cpu')


def _result(readings, wall=10.0, step=0.1):
    return dict(wall_s=wall, step_s=step, readings={
        k: dict(val=dict(top1=v), test=dict(top1=t, many=t + 1, medium=t - 1),
                test_per_class=[t, t + 2], train_counts=[50, 2])
        for k, (v, t) in readings.items()})


def _results():
    """Seed 0 alone prefers tau0 on val; seeds 0 and 1 together prefer tau1."""
    return {
        (0, 'ce'): _result({'default': (50, 60)}, wall=100, step=0.2),
        (0, 'ce/taunorm'): _result({'tau0': (56, 80), 'tau1': (55, 70)}, wall=1, step=None),
        (1, 'ce'): _result({'default': (52, 64)}, wall=120, step=0.25),
        (1, 'ce/taunorm'): _result({'tau0': (50, 81), 'tau1': (57, 74)}, wall=3, step=None),
    }


def _summary(seeds, results):
    out = summarize(select_arms(['ce', 'taunorm']), seeds, results)
    out.update(PROTOCOL, seeds=list(seeds))
    return out


def _strip(summary):
    return {n: {k: v for k, v in e.items() if k != 'per_seed'}
            for n, e in summary['arms'].items()}


def test_merging_one_seed_runs_equals_running_all_seeds_at_once():
    results = _results()
    s0 = _summary([0], {k: v for k, v in results.items() if k[0] == 0})
    s1 = _summary([1], {k: v for k, v in results.items() if k[0] == 1})
    assert s0['arms']['taunorm']['reading'] == 'tau0'          # seed 0 alone
    merged = merge_summaries([('s1.json', s1), ('s0.json', s0)])
    whole = _summary([0, 1], results)
    assert _strip(merged) == _strip(whole)
    tau = merged['arms']['taunorm']
    assert tau['reading'] == 'tau1' and tau['seeds'] == [0, 1]   # chosen again on both seeds
    assert tau['test']['top1'] == pytest.approx(72.0)
    assert tau['test']['top1_std'] == pytest.approx(np.std([70, 74], ddof=1))
    assert tau['test_per_class'] == pytest.approx([72.0, 74.0])
    assert merged['arms']['ce']['wall_s'] == pytest.approx(110.0)
    assert merged['seeds'] == [0, 1] and merged['merged_from'] == ['s1.json', 's0.json']
    assert merged['methods'] == whole['methods']


def test_a_summary_without_per_seed_records_merges_its_one_seed_and_refuses_several():
    results = _results()
    s0 = _summary([0], {k: v for k, v in results.items() if k[0] == 0})
    s1 = _summary([1], {k: v for k, v in results.items() if k[0] == 1})
    legacy = copy.deepcopy(s0)
    for entry in legacy['arms'].values():
        del entry['per_seed']
    merged = merge_summaries([('old.json', legacy), ('s1.json', s1)])
    # the old file kept only its chosen reading (tau0): the merge can only report that one
    tau = merged['arms']['taunorm']
    assert tau['reading'] == 'tau0' and list(tau['readings_val']) == ['tau0']
    assert tau['test']['top1'] == pytest.approx((80 + 81) / 2)
    both = _summary([0, 1], results)
    for entry in both['arms'].values():
        del entry['per_seed']
    with pytest.raises(ValueError, match=r'arm ce averages seeds \[0, 1\]'):
        merge_summaries([('both.json', both), ('s1.json', s1)])


def test_merge_takes_a_seed_twice_only_with_equal_numbers_and_refuses_another_protocol():
    results = _results()
    s0 = _summary([0], {k: v for k, v in results.items() if k[0] == 0})
    # the same stage result in two summaries counts once
    again = merge_summaries([('a.json', s0), ('b.json', copy.deepcopy(s0))])
    assert again['arms']['ce']['seeds'] == [0]
    assert again['arms']['ce']['test'] == s0['arms']['ce']['test']
    other = copy.deepcopy(s0)
    other['arms']['ce']['per_seed']['0']['readings']['default']['test']['top1'] = 1.0
    with pytest.raises(ValueError, match='seed 0 is in both a.json and b.json with other'):
        merge_summaries([('a.json', s0), ('b.json', other)])
    s1 = _summary([1], {k: v for k, v in results.items() if k[0] == 1})
    s1['schedule'] = 'paper'
    with pytest.raises(ValueError, match="b.json: schedule is 'paper'"):
        merge_summaries([('a.json', s0), ('b.json', s1)])
    s1['schedule'] = 'cpu'
    s1['arms']['taunorm']['stages'] = ['ce', 'ce/other']
    with pytest.raises(ValueError, match='arm taunorm runs stages'):
        merge_summaries([('a.json', s0), ('b.json', s1)])


def test_merge_command_writes_the_table_and_names_arms_with_some_seeds_only(tmp_path):
    results = _results()
    s0 = _summary([0], {k: v for k, v in results.items() if k[0] == 0})
    s1 = _summary([1], {k: v for k, v in results.items() if k[0] == 1 and k[1] == 'ce'})
    paths = []
    for i, s in enumerate((s0, s1)):
        paths.append(str(tmp_path / f's{i}.json'))
        with open(paths[-1], 'w') as f:
            json.dump(s, f)
    out = str(tmp_path / 'merged' / 'digits')
    tool = load_tool('tools/benchmark/merge_seeds.py')
    merged = tool.main(paths + ['--out', out])
    assert merged['arms']['ce']['seeds'] == [0, 1]
    for suffix in ('.json', '.md', '_shots.png', '_per_class.png'):
        assert osp.isfile(out + suffix)
    table = open(out + '.md').read()
    assert 'seeds [0, 1] (merged from 2 runs)' in table
    assert 'Arms with only some of the seeds: taunorm ([0]).' in table
    assert '| ce **\\*** | CE (baseline) | default | 51.00 ± 1.41 | 62.00 ± 2.83 |' in table
    with pytest.raises(SystemExit, match='no such summary'):
        tool.main([str(tmp_path / 'missing.json'), '--out', out])
