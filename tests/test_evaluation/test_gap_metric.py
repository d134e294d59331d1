"""GAP@k and mAP (YouTube-8M metrics) on a hand-computed example."""
import numpy as np
import pytest
import torch

import lt_plugins  # noqa: F401
from lt_plugins.evaluation import (GlobalAveragePrecision, global_average_precision,
                                   per_class_average_precision)

SCORES = np.array([[0.9, 0.8, 0.1, 0.3],
                   [0.2, 0.7, 0.6, 0.1],
                   [0.5, 0.4, 0.3, 0.95]])
LABELS = [[0, 2], [2], [3, 1]]
TARGETS = np.zeros((3, 4))
for _i, _l in enumerate(LABELS):
    TARGETS[_i, _l] = 1
COUNTS = [200, 50, 5, 150]          # classes 0, 3 many; 1 medium; 2 few


def test_gap_hand_computed():
    # top-2 per video pooled: 0.95 hit, 0.9 hit, 0.8 miss, 0.7 miss, 0.6 hit, 0.5 miss;
    # precision at the hits 1, 1, 3/5; 5 positive labels in all -> (1 + 1 + 0.6) / 5
    assert global_average_precision(SCORES, TARGETS, top_k=2) == pytest.approx(2.6 / 5)
    # top-1: 0.95 hit, 0.9 hit, 0.7 miss -> (1 + 1) / 5
    assert global_average_precision(SCORES, TARGETS, top_k=1) == pytest.approx(2 / 5)
    # k >= C ranks everything: same as pooled AP of all N x C predictions
    flat_order = np.argsort(-SCORES.ravel(), kind='stable')
    hits = TARGETS.ravel()[flat_order]
    ref = sum(hits[:i + 1].sum() / (i + 1) for i in range(hits.size) if hits[i]) / 5
    assert global_average_precision(SCORES, TARGETS, top_k=20) == pytest.approx(ref)


def test_per_class_ap_hand_computed():
    # class 0: positive ranked 1st -> 1; class 1: positive ranked 3rd -> 1/3;
    # class 2: 0.6 (pos), 0.3, 0.1 (pos) -> (1 + 2/3) / 2; class 3: ranked 1st -> 1
    np.testing.assert_allclose(per_class_average_precision(SCORES, TARGETS),
                               [1, 1 / 3, 5 / 6, 1])


def _samples():
    return [dict(pred_score=torch.tensor(s, dtype=torch.float32), gt_label=torch.tensor(l))
            for s, l in zip(SCORES, LABELS)]


def test_metric_with_shot_splits():
    metric = GlobalAveragePrecision(top_k=2, class_counts=COUNTS)
    metric.dataset_meta = {}
    metric.process(None, _samples())
    got = metric.evaluate(3)
    expected = {'multi_label/gap': 52.0, 'multi_label/mAP': (1 + 1 / 3 + 5 / 6 + 1) / 4 * 100,
                'multi_label/mAP_many': 100.0, 'multi_label/mAP_medium': 100 / 3,
                'multi_label/mAP_few': 500 / 6}
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_errors():
    with pytest.raises(ValueError, match='top_k'):
        GlobalAveragePrecision(top_k=0)
    metric = GlobalAveragePrecision(class_counts=[1, 2])
    metric.process(None, _samples())
    with pytest.raises(ValueError, match='class_counts has 2'):
        metric.compute_metrics(metric.results)
    with pytest.raises(ValueError, match='outside'):
        GlobalAveragePrecision().process(None, [dict(pred_score=torch.zeros(4),
                                                     gt_label=torch.tensor([4]))])


def _dist_eval(rank, world_size):
    samples = _samples()
    padded = samples + samples[:(-len(samples)) % world_size]
    metric = GlobalAveragePrecision(top_k=2, class_counts=COUNTS)
    metric.dataset_meta = {}
    metric.process(None, padded[rank::world_size])
    return metric.evaluate(len(samples))


@pytest.mark.slow
def test_two_process_gloo_matches_single_process():
    from tests.dist_utils import run_distributed
    for got in run_distributed(_dist_eval):
        assert got['multi_label/gap'] == pytest.approx(52.0)
        assert got['multi_label/mAP'] == pytest.approx((1 + 1 / 3 + 5 / 6 + 1) / 4 * 100)
