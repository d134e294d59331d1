"""OpenSetShotAccuracy: OLTR's open-set F-measure and shot accuracies on a hand-made example."""
import json

import numpy as np
import pytest
import torch

import lt_plugins  # noqa: F401
from lt_plugins.evaluation import (OpenSetShotAccuracy, open_set_f_measure,
                                   select_open_threshold)

COUNTS = [200, 50, 5]        # class 0 many, 1 medium, 2 few
# (gt, top-1 prediction, confidence); -1 = unknown class
ROWS = [(0, 0, .9), (0, 0, .3), (0, 1, .8), (1, 1, .7), (1, 0, .2), (2, 2, .6), (2, 2, .4),
        (-1, 0, .95), (-1, 2, .1), (-1, 1, .45)]


def make_samples(rows=ROWS, field=False):
    samples = []
    for gt, pred, conf in rows:
        score = torch.full((3, ), conf / 2)
        score[pred] = conf                         # max of pred_score is the confidence
        ds = dict(gt_label=torch.tensor([gt]), pred_score=score)
        if field:
            ds['open_confidence'] = torch.tensor(1 - conf)
        samples.append(ds)
    return samples


def evaluate(metric, samples):
    metric.dataset_meta = {}
    metric.process(None, samples)
    return metric.evaluate(len(samples))


def test_f_measure_hand_computed():
    gt, pred, conf = (np.array(x) for x in zip(*ROWS))
    # threshold 0.5: accepted = conf >= 0.5
    # OLTR: TP {1,4,6} = 3, FP (known accepted, wrong) {3} = 1, FN (unknown accepted) {8} = 1
    f, p, r = open_set_f_measure(gt, pred, conf, 0.5, 'oltr')
    assert (p, r) == (0.75, 0.75) and f == pytest.approx(0.75)
    # detection: FP = 1 wrong known + 1 accepted unknown, FN = 3 rejected known
    f, p, r = open_set_f_measure(gt, pred, conf, 0.5, 'detection')
    assert p == pytest.approx(3 / 5) and r == pytest.approx(3 / 6)
    assert f == pytest.approx(2 * 0.6 * 0.5 / 1.1)
    # nothing accepted: F = 0, no division error
    assert open_set_f_measure(gt, pred, conf, 2.0)[0] == 0.0
    with pytest.raises(ValueError, match='definition'):
        open_set_f_measure(gt, pred, conf, 0.5, 'macro')


def test_threshold_selection_hand_computed():
    gt, pred, conf = (np.array(x) for x in zip(*ROWS))
    # OLTR: accepting conf >= 0.3 gives TP 5, FP 1, FN 2 -> F = 10 / 13, the maximum
    t, f = select_open_threshold(gt, pred, conf, 'oltr')
    assert t == 0.3 and f == pytest.approx(10 / 13)
    # detection: 0.3 (TP 5, FP 3, FN 1) and 0.2 (TP 5, FP 4, FN 0) tie at 10 / 14;
    # the lower threshold wins
    t, f = select_open_threshold(gt, pred, conf, 'detection')
    assert t == 0.2 and f == pytest.approx(10 / 14)
    # brute force over every candidate agrees
    for definition in ('oltr', 'detection'):
        best = max(open_set_f_measure(gt, pred, conf, c, definition)[0]
                   for c in list(conf) + [1.0])
        assert select_open_threshold(gt, pred, conf, definition)[1] == pytest.approx(best)


def test_metric_hand_computed():
    got = evaluate(OpenSetShotAccuracy(threshold=0.5, class_counts=COUNTS), make_samples())
    expected = {
        'open/top1': 500 / 7, 'open/many': 200 / 3, 'open/medium': 50.0, 'open/few': 100.0,
        # with rejection: correct and accepted {1, 4, 6}
        'open/open_top1': 300 / 7, 'open/open_many': 100 / 3, 'open/open_medium': 50.0,
        'open/open_few': 50.0,
        'open/f_measure': 0.75, 'open/precision': 0.75, 'open/recall': 0.75,
        'open/f_measure_detection': 2 * 0.6 * 0.5 / 1.1, 'open/threshold': 0.5}
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_confidence_field_and_threshold_file(tmp_path):
    # the field holds 1 - conf: rejecting below 0.5 now rejects the confident samples
    metric = OpenSetShotAccuracy(select_threshold=True, threshold_out=str(tmp_path / 't.json'),
                                 confidence_key='open_confidence', class_counts=COUNTS)
    got = evaluate(metric, make_samples(field=True))
    assert 'open/f_measure' not in got
    record = json.loads((tmp_path / 't.json').read_text())
    assert record['threshold'] == got['open/selected_threshold']
    gt, pred, conf = (np.array(x) for x in zip(*ROWS))
    t, f = select_open_threshold(gt, pred, 1 - conf, 'detection')   # the default selection
    assert record['threshold'] == pytest.approx(t) and got['open/f_measure_selected'] == f
    test_metric = OpenSetShotAccuracy(threshold_file=str(tmp_path / 't.json'),
                                      confidence_key='open_confidence', class_counts=COUNTS)
    got = evaluate(test_metric, make_samples(field=True))
    assert got['open/threshold'] == pytest.approx(t)
    assert got['open/f_measure'] == pytest.approx(open_set_f_measure(gt, pred, 1 - conf, t)[0])


def test_oltr_f_is_degenerate_under_threshold_search():
    """Why selection maximises the detection F: OLTR's F ignores rejected known samples, so
    accepting only the most confident (correct) sample scores 1."""
    gt, pred, conf = np.array([0, 1, -1, 0]), np.array([0, 0, 1, 0]), np.array([.9, .8, .7, .6])
    assert select_open_threshold(gt, pred, conf, 'oltr') == (0.9, 1.0)
    t, f = select_open_threshold(gt, pred, conf, 'detection')
    # F = 2TP / (2TP + FP + FN): t=0.9: TP 1 FP 0 FN 2 -> 2/4; 0.8: 1, 1, 1 -> 2/4;
    # 0.7: 1, 2, 1 -> 2/5; 0.6: TP 2 FP 2 (wrong known + unknown) FN 0 -> 4/6
    assert t == 0.6 and f == pytest.approx(2 / 3)


def test_errors():
    with pytest.raises(ValueError, match='threshold'):
        OpenSetShotAccuracy(class_counts=COUNTS)
    with pytest.raises(KeyError, match='open_confidence'):
        OpenSetShotAccuracy(threshold=.5, confidence_key='open_confidence').process(
            None, make_samples())
    with pytest.raises(ValueError, match='class_counts has 4'):
        evaluate(OpenSetShotAccuracy(threshold=.5, class_counts=COUNTS + [1]), make_samples())
    with pytest.raises(FileNotFoundError, match='select_threshold'):
        evaluate(OpenSetShotAccuracy(threshold_file='/nonexistent/t.json',
                                     class_counts=COUNTS), make_samples())


def _dist_eval(rank, world_size):
    samples = make_samples()
    size = len(samples)
    padded = samples + samples[:(-size) % world_size]
    metric = OpenSetShotAccuracy(threshold=0.5, select_threshold=True, class_counts=COUNTS)
    metric.dataset_meta = {}
    metric.process(None, padded[rank::world_size])
    return metric.evaluate(size)


@pytest.mark.slow
def test_two_process_gloo_matches_single_process():
    from tests.dist_utils import run_distributed
    single = evaluate(OpenSetShotAccuracy(threshold=0.5, select_threshold=True,
                                          class_counts=COUNTS), make_samples())
    for got in run_distributed(_dist_eval):
        assert got == pytest.approx(single)
