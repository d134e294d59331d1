"""ReIDMetric: hand-computed toy protocol, brute-force agreement, DDP-correct gathering."""
import math

import numpy as np
import pytest
import torch

import lt_plugins  # noqa: F401
from lt_plugins.evaluation.metrics.reid_metric import ReIDMetric, evaluate_reid
from tests.dist_utils import run_distributed


def _unit(deg):
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


def _toy():
    """Queries q0 (id 1, cam 0), q1 (id 2, cam 0), q2 (id 3: no match); five gallery images."""
    g = [(0, 1, 0), (10, 2, 1), (20, 1, 1), (30, 0, 0), (40, 1, 1)]  # (angle, pid, cam)
    q = [(-5, 1, 0), (12, 2, 0), (100, 3, 0)]
    samples = [dict(pred_feat=torch.tensor(_unit(a)), pid=p, camid=c, is_query=True)
               for a, p, c in q]
    samples += [dict(pred_feat=torch.tensor(_unit(a)), pid=p, camid=c, is_query=False)
                for a, p, c in g]
    return samples


def test_hand_computed_toy():
    # q0 ranking g0 g1 g2 g3 g4 (angles 0..40); g0 is id 1 in cam 0 -> excluded;
    # kept: g1 (id 2) miss, g2 hit @2, g3 (distractor) miss, g4 hit @4: AP = (1/2 + 2/4)/2
    # q1 ranking g1 hit @1 -> AP 1 ; q2 has no match -> skipped
    for distance in ('cosine', 'euclidean'):
        metric = ReIDMetric(distance=distance)
        metric.process(None, _toy())
        out = metric.compute_metrics(metric.results)
        assert out['mAP'] == pytest.approx(75.0)
        assert out['rank1'] == pytest.approx(50.0)
        assert out['rank5'] == pytest.approx(100.0) and out['num_valid_queries'] == 2


def _brute(qf, qp, qc, gf, gp, gc):
    aps, r1 = [], []
    for i in range(len(qp)):
        d = 1 - (qf[i] / np.linalg.norm(qf[i])) @ (gf / np.linalg.norm(gf, axis=1)[:, None]).T
        ranking = [j for j in np.argsort(d, kind='stable')
                   if not (gp[j] == qp[i] and gc[j] == qc[i]) and gp[j] != -1]
        hits = [k for k, j in enumerate(ranking) if gp[j] == qp[i]]
        if not hits:
            continue
        aps.append(np.mean([(n + 1) / (k + 1) for n, k in enumerate(hits)]))
        r1.append(hits[0] == 0)
    return 100 * np.mean(aps), 100 * np.mean(r1)


def test_matches_brute_force_on_random_data():
    rng = np.random.RandomState(0)
    qf, gf = rng.randn(40, 6), rng.randn(90, 6)
    qp, gp = rng.randint(0, 12, 40), rng.randint(-1, 12, 90)
    qc, gc = rng.randint(0, 3, 40), rng.randint(0, 3, 90)
    out = evaluate_reid(qf, qp, qc, gf, gp, gc, chunk_size=7)
    m, r1 = _brute(qf, qp, qc, gf, gp, gc)
    assert out['mAP'] == pytest.approx(m) and out['rank1'] == pytest.approx(r1)


def test_errors():
    metric = ReIDMetric()
    with pytest.raises(KeyError, match='pred_feat'):
        metric.process(None, [dict(pid=1, camid=0, is_query=True)])
    metric.process(None, [s for s in _toy() if s['is_query']])
    with pytest.raises(ValueError, match='split=.test.'):
        metric.compute_metrics(metric.results)


def _dist_eval(rank, world_size):
    samples = _toy()
    metric = ReIDMetric()
    # DefaultSampler order: rank r gets indices r, r + 2, ...; padded by repeating index 0
    idx = list(range(len(samples))) + [0] * (-len(samples) % world_size)
    metric.process(None, [samples[i] for i in idx[rank::world_size]])
    return metric.evaluate(size=len(samples))


def test_ddp_gathers_full_query_and_gallery():
    outs = run_distributed(_dist_eval, world_size=2)
    for out in outs:
        assert out['reid/mAP'] == pytest.approx(75.0) and out['reid/rank1'] == pytest.approx(50.0)
