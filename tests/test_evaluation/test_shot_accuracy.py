"""ShotAccuracy against hand-computed numbers."""
import csv
import json
import os.path as osp

import pytest
import torch

from lt_plugins.evaluation.metrics import shot_accuracy as shot_mod
from lt_plugins.evaluation.metrics.shot_accuracy import ShotAccuracy

# 6 classes; training counts -> many (>100): 0, 1; medium (20..100): 2, 3, 4; few (<20): 5
COUNTS = [500, 150, 100, 50, 20, 5]
# rank of the true class in each test sample's scores (0 = top-1), grouped by class
RANKS = {0: [0, 0, 0, 5], 1: [0, 2], 2: [0, 0], 3: [5], 4: [0, 1, 5, 3], 5: [4, 0]}
# per-class top-1: 75, 50, 100, 0, 25, 50; top-1 8/15; top-5 (rank < 5) 12/15
EXPECTED = {'shot/top1': 800 / 15, 'shot/top5': 80.0, 'shot/many': 62.5,
            'shot/medium': 125 / 3, 'shot/few': 50.0}


def make_samples(ranks=RANKS, num_classes=6):
    samples = []
    for gt, rank_list in ranks.items():
        for r in rank_list:
            others = [c for c in range(num_classes) if c != gt]
            order = others[:r] + [gt] + others[r:]
            score = torch.empty(num_classes)
            score[torch.tensor(order)] = torch.arange(num_classes, 0, -1).float()
            samples.append(dict(pred_score=score.softmax(0), gt_label=torch.tensor([gt])))
    return samples


def evaluate(metric, samples, batch=4):
    metric.dataset_meta = dict(classes=tuple(f'c{i}' for i in range(6)))
    for i in range(0, len(samples), batch):
        metric.process(None, samples[i:i + batch])
    return metric.evaluate(len(samples))


def assert_metrics(got, expected):
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def test_hand_computed():
    metric = ShotAccuracy()
    metric.set_class_counts(torch.tensor(COUNTS))
    assert_metrics(evaluate(metric, make_samples()), EXPECTED)


def test_thresholds_and_topk_above_num_classes():
    # many > 120: 0, 1; few < 50: 4, 5; medium 50..120: 2, 3
    metric = ShotAccuracy(topk=(1, 5, 10), many_thr=120, few_thr=50, class_counts=COUNTS)
    expected = dict(EXPECTED)
    expected.update({'shot/medium': 50.0, 'shot/few': 37.5})
    assert_metrics(evaluate(metric, make_samples()), expected)  # no shot/top10 (C = 6)
    with pytest.raises(ValueError, match='few_thr'):
        ShotAccuracy(many_thr=10, few_thr=20)


def test_absent_split_is_missing_and_logged(monkeypatch):
    logged = []
    monkeypatch.setattr(shot_mod, 'print_log', lambda msg, **kw: logged.append(msg))
    counts = [500, 150, 100, 50, 20, 25]  # no class below 20
    metric = ShotAccuracy(topk=1, class_counts=counts)
    got = evaluate(metric, make_samples())
    assert 'shot/few' not in got and 'shot/top5' not in got
    assert got['shot/medium'] == pytest.approx((100 + 0 + 25 + 50) / 4)
    assert any('absent' in m and 'few' in m for m in logged)
    # a split whose classes have no test sample is absent too
    ranks = {c: r for c, r in RANKS.items() if c != 5}
    got = evaluate(ShotAccuracy(class_counts=COUNTS), make_samples(ranks))
    assert 'shot/few' not in got and got['shot/many'] == pytest.approx(62.5)


def test_labels_only_predictions_give_top1():
    samples = [dict(pred_label=s['pred_score'].argmax().reshape(1), gt_label=s['gt_label'])
               for s in make_samples()]
    got = evaluate(ShotAccuracy(class_counts=COUNTS), samples)
    expected = {k: v for k, v in EXPECTED.items() if k != 'shot/top5'}
    assert_metrics(got, expected)


def test_missing_counts_error_names_the_fix():
    metric = ShotAccuracy()
    metric.dataset_meta = {}
    metric.process(None, make_samples()[:2])
    with pytest.raises(RuntimeError, match=r'ClassCountsHook.*custom_hooks.*class_counts'):
        metric.evaluate(2)


def test_explicit_counts_override_hook_and_mismatch_error():
    metric = ShotAccuracy(class_counts=COUNTS)
    metric.set_class_counts([1, 1, 1, 1, 1, 1])  # the hook's counts lose
    assert_metrics(evaluate(metric, make_samples()), EXPECTED)
    with pytest.raises(ValueError, match='scores 6 classes but class_counts has 4'):
        evaluate(ShotAccuracy(class_counts=[5, 5, 5, 5]), make_samples())


@pytest.mark.parametrize('ext', ['json', 'csv'])
def test_per_class_file(tmp_path, ext):
    out = tmp_path / 'sub' / f'per_class.{ext}'
    ranks = {c: r for c, r in RANKS.items() if c != 3}  # class 3 untested
    metric = ShotAccuracy(class_counts=COUNTS, per_class_out=str(out))
    evaluate(metric, make_samples(ranks))
    if ext == 'json':
        data = json.loads(out.read_text())
        assert (data['many_thr'], data['few_thr']) == (100, 20)
        rows = data['per_class']
        assert data['metrics']['many'] == pytest.approx(62.5)
    else:
        with open(out) as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            row['accuracy'] = float(row['accuracy']) if row['accuracy'] else None
    assert [r['class_name'] for r in rows] == [f'c{i}' for i in range(6)]
    assert [int(r['train_count']) for r in rows] == COUNTS
    assert [int(r['test_count']) for r in rows] == [4, 2, 2, 0, 4, 2]
    assert [r['split'] for r in rows] == ['many', 'many', 'medium', 'medium', 'medium', 'few']
    assert [r['accuracy'] for r in rows] == [75.0, 50.0, 100.0, None, 25.0, 50.0]


def test_per_class_relative_path(tmp_path):
    metric = ShotAccuracy(class_counts=COUNTS, per_class_out='per_class.json')
    metric.set_work_dir(str(tmp_path))
    evaluate(metric, make_samples())
    assert osp.isfile(tmp_path / 'per_class.json')
    with pytest.raises(ValueError, match='.csv or .json'):
        ShotAccuracy(per_class_out='per_class.txt')


def test_per_class_relative_path_from_runner_log(tmp_path):
    from mmengine.logging import MMLogger
    log_dir = tmp_path / 'work' / '20260101_000000'
    log_dir.mkdir(parents=True)
    MMLogger.get_instance('test_shot_relative', log_file=str(log_dir / '20260101_000000.log'))
    metric = ShotAccuracy(class_counts=COUNTS, per_class_out='acc/per_class.csv')
    assert metric.resolve_out_path() == str(tmp_path / 'work' / 'acc' / 'per_class.csv')


def test_registered():
    from mmpretrain.registry import METRICS
    metric = METRICS.build(dict(type='ShotAccuracy', class_counts=COUNTS))
    assert isinstance(metric, ShotAccuracy) and metric.prefix == 'shot'


def _dist_eval(rank, world_size):
    samples = make_samples()
    size = len(samples)
    # DefaultSampler with round_up: pad to a multiple of world_size, then rank::world_size
    padded = samples + samples[:(-size) % world_size]
    metric = ShotAccuracy(class_counts=COUNTS)
    metric.dataset_meta = {}
    metric.process(None, padded[rank::world_size])
    return metric.evaluate(size)


@pytest.mark.slow
def test_two_process_gloo_matches_single_process():
    from tests.dist_utils import run_distributed
    results = run_distributed(_dist_eval)
    for got in results:
        assert_metrics(got, EXPECTED)
