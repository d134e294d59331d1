"""YouTube-8M's Global Average Precision (GAP@k) and per-class mean AP, with shot splits."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from .shot_accuracy import SPLITS


def _average_precision(scores: np.ndarray, hits: np.ndarray, num_positives: int) -> float:
    """``sum_i p(i) * delta_r(i)`` over predictions sorted by score (stable, descending):
    the precision at each hit, summed, divided by ``num_positives``."""
    if num_positives <= 0:
        return float('nan')
    order = np.argsort(-scores, kind='stable')
    hits = hits[order].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float((precision * hits).sum() / num_positives)


def global_average_precision(scores: np.ndarray, targets: np.ndarray, top_k: int = 20) -> float:
    """GAP@k (Abu-El-Haija et al. 2016, the YouTube-8M metric; IEM Eq. 17).

    Each sample contributes its ``top_k`` highest-scoring classes as predictions; all of them
    are pooled, sorted by score, and ``GAP = sum_i p(i) * delta_r(i)`` with recall measured
    against *all* positive labels (also those outside a sample's top k), as YouTube-8M's
    ``eval_util.calculate_gap``. ``scores`` and ``targets`` are ``(N, C)``; returns [0, 1].
    """
    k = min(int(top_k), scores.shape[1])
    top = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    pooled = np.take_along_axis(scores, top, 1).reshape(-1)
    hits = np.take_along_axis(targets > 0, top, 1).reshape(-1)
    return _average_precision(pooled, hits, int((targets > 0).sum()))


def per_class_average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``(C,)`` average precision of each class over all samples (NaN: no positive)."""
    return np.array([_average_precision(scores[:, c], targets[:, c] > 0,
                                        int((targets[:, c] > 0).sum()))
                     for c in range(scores.shape[1])])


@METRICS.register_module()
class GlobalAveragePrecision(BaseMetric):
    """GAP@k and mAP for multi-label (video) classification, with many / medium / few mAP.

    ``gap`` is YouTube-8M's GAP@``top_k`` (:func:`global_average_precision`, IEM Eq. 17,
    ``P = 20``); ``mAP`` the mean over classes with at least one positive evaluation sample of
    each class's average precision over all samples (full ranking, no top-k cut). With
    training counts (``ClassCountsHook`` calls :meth:`set_class_counts`; for
    ``FeatureVectorDataset`` every label occurrence counts) ``mAP_many`` / ``mAP_medium`` /
    ``mAP_few`` average the classes of each split (``> many_thr``, ``< few_thr``); a split
    without evaluated classes is absent. All values in percent.

    Targets are each sample's ``gt_score`` if present, else the multi-hot of its ``gt_label``
    list. Every rank keeps ``(scores, targets)`` per sample; mmengine's ``BaseMetric`` gathers
    them (dropping sampler padding) before :meth:`compute_metrics`. Memory: ``N x C`` floats
    (YouTube-8M's full validation set would need ~17 GB; evaluate a subset of shards).

    Args:
        top_k (int): predictions per sample for GAP. Defaults to 20.
        many_thr (int): many-shot classes have more training labels. Defaults to 100.
        few_thr (int): few-shot classes have fewer. Defaults to 20.
        class_counts (Sequence[int], optional): explicit training counts. Defaults to None.
        collect_device (str): Defaults to 'cpu'.
        prefix (str, optional): Defaults to ``'multi_label'``.
    """

    default_prefix: Optional[str] = 'multi_label'

    def __init__(self, top_k: int = 20, many_thr: int = 100, few_thr: int = 20,
                 class_counts: Optional[Sequence[int]] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if int(top_k) < 1:
            raise ValueError(f'GlobalAveragePrecision: top_k={top_k} must be >= 1.')
        self.top_k = int(top_k)
        self.many_thr, self.few_thr = int(many_thr), int(few_thr)
        self._explicit_counts = class_counts is not None
        self.class_counts = (None if class_counts is None
                             else np.asarray(class_counts, dtype=np.int64).reshape(-1))

    def set_class_counts(self, counts) -> None:
        """Training label counts (from ``ClassCountsHook``); an explicit argument wins."""
        if self._explicit_counts:
            return
        if isinstance(counts, torch.Tensor):
            counts = counts.detach().cpu().numpy()
        self.class_counts = np.asarray(counts, dtype=np.int64).reshape(-1)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            score = torch.as_tensor(ds['pred_score']).detach().float().cpu()
            num_classes = score.numel()
            if 'gt_score' in ds:
                target = torch.as_tensor(ds['gt_score']).float().cpu().reshape(-1)
            else:
                labels = torch.as_tensor(ds['gt_label']).long().cpu().reshape(-1)
                if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
                    raise ValueError(f'GlobalAveragePrecision: labels {labels.tolist()} '
                                     f'outside [0, {num_classes}) of the scores.')
                target = torch.zeros(num_classes)
                target[labels] = 1
            self.results.append(dict(score=score.numpy(), target=target.numpy()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            return {}
        scores = np.stack([r['score'] for r in results])
        targets = np.stack([r['target'] for r in results])
        metrics = {'gap': global_average_precision(scores, targets, self.top_k) * 100}
        ap = per_class_average_precision(scores, targets) * 100
        evaluated = ~np.isnan(ap)
        if evaluated.any():
            metrics['mAP'] = float(ap[evaluated].mean())
        if self.class_counts is not None:
            if len(self.class_counts) != scores.shape[1]:
                raise ValueError(f'GlobalAveragePrecision: class_counts has '
                                 f'{len(self.class_counts)} classes, the scores '
                                 f'{scores.shape[1]}.')
            counts = self.class_counts
            split_of = np.where(counts > self.many_thr, 'many',
                                np.where(counts < self.few_thr, 'few', 'medium'))
            for split in SPLITS:
                members = (split_of == split) & evaluated
                if members.any():
                    metrics[f'mAP_{split}'] = float(ap[members].mean())
        print_log(f'GlobalAveragePrecision: {len(results)} samples, '
                  f'{int(evaluated.sum())} of {scores.shape[1]} classes with positives',
                  logger='current')
        return metrics


__all__ = ['GlobalAveragePrecision', 'global_average_precision', 'per_class_average_precision']
