"""Person re-ID retrieval metric: mAP and CMC rank-k under the Market-1501 protocol."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmpretrain.registry import METRICS


def _distance(q: np.ndarray, g: np.ndarray, metric: str) -> np.ndarray:
    if metric == 'cosine':
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        gn = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        return 1.0 - qn @ gn.T
    sq = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * q @ g.T
    return np.maximum(sq, 0.0)


def evaluate_reid(q_feat: np.ndarray, q_pid: np.ndarray, q_cam: np.ndarray,
                  g_feat: np.ndarray, g_pid: np.ndarray, g_cam: np.ndarray,
                  topk: Sequence[int] = (1, 5, 10), distance: str = 'cosine',
                  chunk_size: int = 256) -> Dict[str, float]:
    """mAP and CMC of queries against a gallery (Market-1501 protocol), vectorised.

    Per query the gallery is ranked by distance (stable sort: ties keep gallery order); gallery
    images with the query's id *and* camera, and junk images (id ``-1``), are removed from the
    ranking; a query with no remaining true match is skipped (as in the official code).
    AP is the non-interpolated average precision ``mean over hits of (hits so far / rank)``;
    CMC rank-k is the share of queries whose first true match is within the top ``k``.
    Queries are processed in chunks of ``chunk_size`` rows of the distance matrix.

    Returns:
        dict: ``mAP``, ``rank{k}`` (percent) and ``num_valid_queries``.
    """
    if distance not in ('cosine', 'euclidean'):
        raise ValueError(f"distance={distance!r}: choose 'cosine' or 'euclidean'.")
    q_feat = np.asarray(q_feat, dtype=np.float64)
    g_feat = np.asarray(g_feat, dtype=np.float64)
    q_pid, q_cam = np.asarray(q_pid), np.asarray(q_cam)
    g_pid, g_cam = np.asarray(g_pid), np.asarray(g_cam)
    topk = tuple(int(k) for k in topk)
    aps, first_ranks = [], []
    for s in range(0, len(q_pid), chunk_size):
        dist = _distance(q_feat[s:s + chunk_size], g_feat, distance)
        order = np.argsort(dist, axis=1, kind='stable')
        qp = q_pid[s:s + chunk_size, None]
        qc = q_cam[s:s + chunk_size, None]
        gp, gc = g_pid[order], g_cam[order]
        match = gp == qp
        keep = ~(match & (gc == qc)) & (gp != -1)
        hit = match & keep
        kept_rank = np.cumsum(keep, axis=1) - 1          # rank among kept gallery images
        num_hits = hit.sum(1)
        valid = num_hits > 0
        cum_hits = np.cumsum(hit, axis=1)
        precision = np.where(hit, cum_hits / np.maximum(kept_rank + 1.0, 1.0), 0.0)
        aps.append(precision.sum(1)[valid] / num_hits[valid])
        first = np.argmax(hit, axis=1)
        first_ranks.append(kept_rank[np.arange(len(first)), first][valid])
    aps = np.concatenate(aps) if aps else np.zeros(0)
    first_ranks = np.concatenate(first_ranks) if first_ranks else np.zeros(0, dtype=np.int64)
    n = len(aps)
    out = dict(mAP=float(aps.mean() * 100) if n else 0.0)
    for k in topk:
        out[f'rank{k}'] = float((first_ranks < k).mean() * 100) if n else 0.0
    out['num_valid_queries'] = n
    return out


def _field(sample, key, default=None):
    if isinstance(sample, dict):
        return sample.get(key, default)
    return sample.get(key, default) if hasattr(sample, 'get') else getattr(sample, key, default)


@METRICS.register_module()
class ReIDMetric(BaseMetric):
    """Re-ID retrieval metric: mAP and CMC rank-1/5/10, Market-1501 protocol.

    Evaluate on ``ReIDDataset(split='test')`` (query + gallery): each sample needs the
    retrieval feature (``feat_key``, ``pred_feat`` from ``MBJMetricHead.predict``) and its
    ``pid``, ``camid`` and ``is_query`` (put them in ``PackInputs(meta_keys=...)``). Same-id
    same-camera gallery images are excluded per query (:func:`evaluate_reid`).

    Why not MMPretrain's ``RetrievalAveragePrecision`` / ``RetrievalRecall``: they call
    ``np.in1d`` (removed in numpy 2) and average per-batch values of the local shard under
    DDP. Here ``process`` only stores per-sample features, ``BaseMetric.evaluate`` gathers
    them from every rank in dataset order (dropping sampler padding), and the ranking runs
    once over the full query and gallery sets.

    Args:
        feat_key (str): data-sample field with the feature. Defaults to ``'pred_feat'``.
        distance (str): ``'cosine'`` (default) or ``'euclidean'``.
        topk (Sequence[int]): CMC ranks. Defaults to ``(1, 5, 10)``.
        chunk_size (int): query rows per distance chunk. Defaults to 256.
        collect_device (str): ``'cpu'`` or ``'gpu'``. prefix (str, optional): metric prefix.
    """

    default_prefix = 'reid'

    def __init__(self, feat_key: str = 'pred_feat', distance: str = 'cosine',
                 topk: Sequence[int] = (1, 5, 10), chunk_size: int = 256,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if distance not in ('cosine', 'euclidean'):
            raise ValueError(f"ReIDMetric: distance={distance!r}, choose 'cosine' or "
                             "'euclidean'.")
        self.feat_key = feat_key
        self.distance = distance
        self.topk = tuple(topk)
        self.chunk_size = int(chunk_size)

    def process(self, data_batch, data_samples: Sequence) -> None:
        for ds in data_samples:
            feat = _field(ds, self.feat_key)
            if feat is None:
                raise KeyError(
                    f'ReIDMetric: data samples carry no {self.feat_key!r}; use a head that '
                    'stores retrieval features (MBJMetricHead) or set `feat_key`.')
            pid, camid, is_query = (_field(ds, 'pid'), _field(ds, 'camid'),
                                    _field(ds, 'is_query'))
            if pid is None or camid is None or is_query is None:
                raise KeyError('ReIDMetric: data samples need pid, camid and is_query: use '
                               "ReIDDataset(split='test') and PackInputs(meta_keys=(..., "
                               "'pid', 'camid', 'is_query')).")
            feat = feat.detach().float().cpu() if isinstance(feat, torch.Tensor) else \
                torch.as_tensor(feat, dtype=torch.float32)
            self.results.append(dict(feat=feat.reshape(-1), pid=int(pid), camid=int(camid),
                                     is_query=bool(is_query)))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        feats = torch.stack([r['feat'] for r in results]).numpy()
        pid = np.array([r['pid'] for r in results], dtype=np.int64)
        cam = np.array([r['camid'] for r in results], dtype=np.int64)
        is_q = np.array([r['is_query'] for r in results], dtype=bool)
        if not is_q.any() or is_q.all():
            raise ValueError(f'ReIDMetric: got {int(is_q.sum())} queries and '
                             f'{int((~is_q).sum())} gallery images; evaluate on '
                             "ReIDDataset(split='test') (query + gallery).")
        out = evaluate_reid(feats[is_q], pid[is_q], cam[is_q], feats[~is_q], pid[~is_q],
                            cam[~is_q], self.topk, self.distance, self.chunk_size)
        skipped = int(is_q.sum()) - out['num_valid_queries']
        if skipped:
            MMLogger.get_current_instance().warning(
                f'ReIDMetric: {skipped} queries have no valid gallery match and are skipped.')
        return out
