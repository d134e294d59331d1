"""Open-set long-tailed evaluation (OLTR protocol): shot accuracies and the open-set F-measure."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from .shot_accuracy import SPLITS, ShotAccuracy

DEFINITIONS = ('oltr', 'detection')


def _counts(gt: np.ndarray, pred: np.ndarray, accepted: np.ndarray,
            definition: str) -> Tuple[int, int, int]:
    """``(TP, FP, FN)`` of the open-set F-measure (see :class:`OpenSetShotAccuracy`)."""
    known = gt >= 0
    correct = known & accepted & (pred == gt)
    tp = int(correct.sum())
    wrong_known = int((known & accepted & (pred != gt)).sum())
    if definition == 'oltr':
        fp = wrong_known
        fn = int((~known & accepted).sum())
    else:
        fp = wrong_known + int((~known & accepted).sum())
        fn = int((known & ~accepted).sum())
    return tp, fp, fn


def _f_from_counts(tp, fp, fn):
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
    denom = precision + recall
    f = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return f, precision, recall


def open_set_f_measure(gt: Sequence[int], pred: Sequence[int], confidence: Sequence[float],
                       threshold: float, definition: str = 'oltr'
                       ) -> Tuple[float, float, float]:
    """``(F, precision, recall)``; a sample is rejected when ``confidence < threshold``.

    ``gt`` is -1 for unknown-class samples; ``pred`` the closed-set top-1 class.
    """
    if definition not in DEFINITIONS:
        raise ValueError(f'open_set_f_measure: definition={definition!r}; use one of '
                         f'{DEFINITIONS}.')
    gt, pred = np.asarray(gt, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    accepted = np.asarray(confidence, dtype=np.float64) >= threshold
    f, p, r = _f_from_counts(*_counts(gt, pred, accepted, definition))
    return float(f), float(p), float(r)


def select_open_threshold(gt: Sequence[int], pred: Sequence[int],
                          confidence: Sequence[float], definition: str = 'oltr'
                          ) -> Tuple[float, float]:
    """The threshold maximising the open-set F-measure on these (validation) predictions.

    Candidates are the distinct confidences (accept ``confidence >= t``) and one above the
    largest (reject everything); all are scored in one pass over the samples sorted by
    confidence. Ties go to the lowest threshold (fewest rejections). Returns ``(t, F(t))``.
    Use it on a validation split only: a threshold picked on test inflates the F-measure.
    """
    if definition not in DEFINITIONS:
        raise ValueError(f'select_open_threshold: definition={definition!r}; use one of '
                         f'{DEFINITIONS}.')
    gt, pred = np.asarray(gt, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.size == 0:
        raise ValueError('select_open_threshold: no predictions.')
    order = np.argsort(-conf, kind='stable')
    conf_s, gt_s, pred_s = conf[order], gt[order], pred[order]
    known = gt_s >= 0
    # accepted prefix of length m (m = 0 .. N): cumulative counts
    cum = lambda x: np.concatenate([[0], np.cumsum(x)])  # noqa: E731
    kc = cum(known & (pred_s == gt_s))
    kw = cum(known & (pred_s != gt_s))
    un = cum(~known)
    kn = cum(known)
    # thresholds: each distinct value accepts the prefix up to its last occurrence
    last = np.r_[np.nonzero(conf_s[1:] != conf_s[:-1])[0], conf_s.size - 1]
    lengths = np.r_[0, last + 1]
    thresholds = np.r_[np.nextafter(conf_s[0], np.inf), conf_s[last]]
    tp = kc[lengths]
    if definition == 'oltr':
        fp, fn = kw[lengths], un[lengths]
    else:
        fp, fn = kw[lengths] + un[lengths], kn[-1] - kn[lengths]
    f = _f_from_counts(tp, fp, fn)[0]
    best = np.flatnonzero(f == f.max())[-1]            # lowest threshold among the best
    return float(thresholds[best]), float(f[best])


@METRICS.register_module()
class OpenSetShotAccuracy(ShotAccuracy):
    """Closed-set and open-set shot accuracies plus OLTR's open-set F-measure.

    The open-set protocol of OLTR (Liu et al., CVPR 2019) that IEM (Zhu & Yang, CVPR 2020,
    Table 4) reports: the test set holds known-class samples (labels ``0..C-1``) and samples
    of classes never trained on (label ``-1``). A sample is **rejected** as unknown when its
    confidence is below ``threshold`` (OLTR: ``preds[probs < open_threshold] = -1``, with
    ``probs`` the softmax maximum). Reported (percentages except the F-measure):

    * ``top1``, ``many``, ``medium``, ``few``: closed-set accuracies on the known samples
      only, no rejection (as :class:`ShotAccuracy`);
    * ``open_top1``, ``open_many``, ``open_medium``, ``open_few``: the same with rejection
      (a rejected known sample counts as wrong) -- Table 4's open-set columns;
    * ``f_measure`` (and ``precision``, ``recall``) at ``threshold``.

    **F-measure definitions.** ``definition='oltr'`` (default) is OLTR's released code
    (``utils.F_measure(..., openset=True)``), read as: with ``p`` the prediction after
    rejection (-1 if rejected), ``TP = #{known, p == y}``, ``FP = #{known, p != y, p != -1}``
    (accepted known samples classified wrongly), ``FN = #{unknown, p != -1}`` (unknown
    samples accepted as some known class); known samples that are rejected and unknown
    samples that are rejected count in none of the three. ``F = 2PR / (P + R)`` with
    ``P = TP / (TP + FP)``, ``R = TP / (TP + FN)`` (0 where a denominator is 0).
    ``definition='detection'`` is the textbook reading of "precision / recall over the known
    decisions": ``TP`` as above, ``FP = #{unknown accepted} + #{known accepted, wrong}``,
    ``FN = #{known rejected}``.

    **Threshold.** Choose it on a validation split, never on test: with
    ``select_threshold=True`` (the val evaluator) the metric also reports
    ``selected_threshold`` = :func:`select_open_threshold` on the evaluated predictions and
    ``f_measure_selected`` (optimistic: chosen and scored on the same split). The selection
    maximises the F-measure of ``select_definition``, by default ``'detection'``: OLTR's F
    cannot be maximised over thresholds, because rejected known samples cost it nothing --
    a threshold that accepts only the most confident correct known sample gives ``FP = FN =
    0`` and ``F = 1`` (OLTR itself used a fixed 0.1). ``f_measure_detection`` (or
    ``f_measure_oltr``) reports the other definition next to ``f_measure``. With
    ``threshold_out``, writes ``{"threshold": t, ...}`` as JSON; the test evaluator reads it
    back with ``threshold_file`` (relative paths resolve as ``per_class_out``).

    **Confidence.** ``confidence_key=None`` (default) takes the maximum of ``pred_score`` --
    the softmax maximum for ``LinearClsHead`` / cRT heads, the maximum of the combined final
    scores for ``IEMHead``. A string names a data-sample field holding one scalar per sample
    (``IEMHead(open_confidence=...)`` writes ``open_confidence``).

    DDP: per-sample ``(gt, top-1, confidence)`` records are gathered by mmengine's
    ``BaseMetric.evaluate`` exactly as in :class:`ShotAccuracy`.

    Args:
        threshold (float, optional): rejection threshold. Defaults to None.
        threshold_file (str, optional): JSON written by ``threshold_out``; used when
            ``threshold`` is None. Defaults to None.
        select_threshold (bool): report the F-maximising threshold of this split (val).
            Defaults to False.
        threshold_out (str, optional): write the selected threshold here. Defaults to None.
        definition (str): ``'oltr'`` or ``'detection'``. Defaults to ``'oltr'``.
        select_definition (str): the F-measure ``select_threshold`` maximises. Defaults to
            ``'detection'``.
        confidence_key (str, optional): data-sample field of the confidence. Defaults to None.
        many_thr, few_thr, class_counts, per_class_out, collect_device: as ShotAccuracy.
        prefix (str, optional): defaults to ``'open'``.
    """

    default_prefix: Optional[str] = 'open'

    def __init__(self,
                 threshold: Optional[float] = None,
                 threshold_file: Optional[str] = None,
                 select_threshold: bool = False,
                 threshold_out: Optional[str] = None,
                 definition: str = 'oltr',
                 select_definition: str = 'detection',
                 confidence_key: Optional[str] = None,
                 many_thr: int = 100,
                 few_thr: int = 20,
                 class_counts: Optional[Sequence[int]] = None,
                 per_class_out: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(topk=1, many_thr=many_thr, few_thr=few_thr,
                         class_counts=class_counts, per_class_out=per_class_out,
                         collect_device=collect_device, prefix=prefix)
        for name, value in (('definition', definition),
                            ('select_definition', select_definition)):
            if value not in DEFINITIONS:
                raise ValueError(f'OpenSetShotAccuracy: {name}={value!r}; use one of '
                                 f'{DEFINITIONS}.')
        self.select_definition = select_definition
        if threshold is None and threshold_file is None and not select_threshold:
            raise ValueError(
                'OpenSetShotAccuracy needs a rejection threshold: pass `threshold=` or '
                '`threshold_file=` (chosen on the validation split), or '
                '`select_threshold=True` on the validation evaluator to choose one.')
        if threshold_out is not None and not select_threshold:
            raise ValueError('OpenSetShotAccuracy: `threshold_out` needs '
                             '`select_threshold=True`.')
        self.threshold = None if threshold is None else float(threshold)
        self.threshold_file = threshold_file
        self.select_threshold = bool(select_threshold)
        self.threshold_out = threshold_out
        self.definition = definition
        self.confidence_key = confidence_key

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep, per sample, the label (-1: unknown), the top-1 class and the confidence."""
        for ds in data_samples:
            gt = int(torch.as_tensor(ds['gt_label']).reshape(-1)[0])
            if 'pred_score' in ds:
                score = torch.as_tensor(ds['pred_score']).detach().float().cpu()
                pred = int(score.argmax())
                num_classes = score.numel()
            else:
                pred = int(torch.as_tensor(ds['pred_label']).reshape(-1)[0])
                score, num_classes = None, None
            if self.confidence_key is None:
                if score is None:
                    raise ValueError('OpenSetShotAccuracy: samples carry no `pred_score`, so '
                                     'the softmax-maximum confidence is undefined; set '
                                     '`confidence_key` to a field that holds one.')
                conf = float(score.max())
            else:
                if self.confidence_key not in ds:
                    raise KeyError(
                        f'OpenSetShotAccuracy: confidence_key={self.confidence_key!r} is not '
                        'a field of the predicted data samples; set the head option that '
                        "writes it (IEMHead(open_confidence=...)) or use confidence_key=None.")
                conf = float(torch.as_tensor(ds[self.confidence_key]).reshape(-1)[0])
            self.results.append(dict(gt=gt, pred=pred, conf=conf, num_classes=num_classes))

    def _threshold(self) -> Optional[float]:
        if self.threshold is not None:
            return self.threshold
        if self.threshold_file is None:
            return None
        path = self.resolve_out_path(self.threshold_file)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'OpenSetShotAccuracy: threshold_file {path} does not exist; evaluate the '
                'validation split with select_threshold=True, threshold_out=... first.')
        with open(path) as f:
            return float(json.load(f)['threshold'])

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        counts = self._require_counts()
        num_classes = len(counts)
        if not results:
            return {}
        gt = np.array([r['gt'] for r in results], dtype=np.int64)
        pred = np.array([r['pred'] for r in results], dtype=np.int64)
        conf = np.array([r['conf'] for r in results], dtype=np.float64)
        score_classes = results[0]['num_classes']
        if score_classes is not None and score_classes != num_classes:
            raise ValueError(
                f'OpenSetShotAccuracy: the model scores {score_classes} classes but '
                f'class_counts has {num_classes}; count the known classes only.')
        if gt.size and (gt.min() < -1 or gt.max() >= num_classes):
            raise ValueError(f'OpenSetShotAccuracy: evaluation labels outside [-1, '
                             f'{num_classes}) (-1 marks an unknown-class sample).')
        known = gt >= 0
        metrics: Dict[str, float] = {}
        split_of = self.split_of(counts)
        threshold = self._threshold()

        def shot_block(hit: np.ndarray, prefix: str) -> None:
            if not known.any():
                return
            metrics[f'{prefix}top1'] = float(hit[known].mean() * 100)
            g = gt[known]
            correct = np.bincount(g, weights=hit[known].astype(np.float64),
                                  minlength=num_classes)
            tested = np.bincount(g, minlength=num_classes)
            per_class = np.where(tested > 0, correct / np.maximum(tested, 1) * 100, np.nan)
            for split in SPLITS:
                members = (split_of == split) & (tested > 0)
                if members.any():
                    metrics[f'{prefix}{split}'] = float(per_class[members].mean())

        shot_block(pred == gt, '')
        if threshold is not None:
            accepted = conf >= threshold
            shot_block((pred == gt) & accepted, 'open_')
            f, p, r = open_set_f_measure(gt, pred, conf, threshold, self.definition)
            other = DEFINITIONS[1 - DEFINITIONS.index(self.definition)]
            metrics.update(f_measure=f, precision=p, recall=r, threshold=threshold)
            metrics[f'f_measure_{other}'] = open_set_f_measure(gt, pred, conf, threshold,
                                                               other)[0]
        if self.select_threshold:
            t, f = select_open_threshold(gt, pred, conf, self.select_definition)
            metrics.update(selected_threshold=t, f_measure_selected=f)
            if self.threshold_out:
                path = self.resolve_out_path(self.threshold_out)
                os.makedirs(osp.dirname(path) or '.', exist_ok=True)
                with open(path, 'w') as fh:
                    json.dump(dict(threshold=t, f_measure=f, definition=self.select_definition,
                                   confidence_key=self.confidence_key,
                                   num_samples=int(gt.size),
                                   num_unknown=int((~known).sum())), fh)
                print_log(f'OpenSetShotAccuracy: threshold {t:.6g} written to {path}',
                          logger='current')
        print_log(f'OpenSetShotAccuracy: {int(known.sum())} known / {int((~known).sum())} '
                  f'unknown samples; F-measure definition {self.definition!r}',
                  logger='current')
        return metrics


__all__ = ['OpenSetShotAccuracy', 'open_set_f_measure', 'select_open_threshold']
