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


def test_runner_val_on_market_layout(tmp_path):
    """ReIDDataset(split='test') -> PackInputs meta keys -> MBJMetricHead.predict -> ReIDMetric."""
    import torch.nn as nn
    from mmengine.runner import Runner
    from mmpretrain.registry import MODELS
    from PIL import Image

    @MODELS.register_module(force=True)
    class _ReIDTinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return (self.conv(x), )

    rng = np.random.RandomState(0)
    layout = {'bounding_box_train': ['0001_c1s1_000001_00.jpg', '0002_c2s1_000002_00.jpg'],
              'query': ['0001_c1s1_000003_00.jpg', '0002_c1s1_000004_00.jpg',
                        '0005_c2s1_000005_00.jpg'],
              'bounding_box_test': ['0001_c2s1_000006_00.jpg', '0001_c1s1_000007_00.jpg',
                                    '0002_c2s1_000008_00.jpg', '0000_c1s1_000009_00.jpg',
                                    '-1_c1s1_000010_00.jpg']}
    for sub, names in layout.items():
        (tmp_path / sub).mkdir()
        for n in names:
            img = rng.randint(0, 255, (16, 8, 3), dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / sub / n)
    meta_keys = ('sample_idx', 'img_path', 'pid', 'camid', 'is_query')
    runner = Runner(
        model=dict(type='ImageClassifier', backbone=dict(type='_ReIDTinyNet'),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='MBJMetricHead', num_classes=2, in_channels=4,
                             memory_enabled=False),
                   data_preprocessor=dict(type='ClsDataPreprocessor')),
        work_dir=str(tmp_path / 'work'), experiment_name='reid_val',
        val_dataloader=dict(
            batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='ReIDDataset', data_root=str(tmp_path), split='test',
                         pipeline=[dict(type='LoadImageFromFile'),
                                   dict(type='PackInputs', meta_keys=meta_keys)])),
        val_cfg=dict(), val_evaluator=dict(type='ReIDMetric'),
        default_scope='mmpretrain', log_level='WARNING')
    out = runner.val()
    # id 1 has a cross-camera match, id 2 too; id 5 has none -> 2 valid queries, junk dropped
    assert out['reid/num_valid_queries'] == 2
    assert 0 <= out['reid/mAP'] <= 100 and out['reid/rank10'] == 100.0
