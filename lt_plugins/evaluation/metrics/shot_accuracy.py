"""Top-k accuracy with the many / medium / few-shot breakdown of long-tailed recognition."""
import csv
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmpretrain.registry import METRICS

SPLITS = ('many', 'medium', 'few')


@METRICS.register_module()
class ShotAccuracy(BaseMetric):
    """Overall top-k accuracy plus many-, medium- and few-shot top-1 accuracy.

    The evaluation protocol of OLTR (Liu et al., CVPR 2019, ``shot_acc`` in its code) and
    Decoupling (Kang et al., ICLR 2020): classes are split by their number of *training*
    images ``N_c`` into many-shot (``N_c > many_thr``), medium-shot
    (``few_thr <= N_c <= many_thr``) and few-shot (``N_c < few_thr``). A split's accuracy
    is the mean over its classes of the per-class top-1 accuracy (on the usual balanced
    test sets this equals the accuracy over the test samples whose label is in the
    split). ``top1`` / ``top5`` are sample
    accuracies over the whole evaluation set, as MMPretrain's ``Accuracy``. All values
    are percentages.

    A split with no classes (e.g. few-shot on CIFAR-10-LT IR100), or whose classes have no
    evaluation sample, is *absent* from the result (not 0) and logged as absent. Top-k for
    ``k`` larger than the number of classes is skipped.

    The training counts come from ``ClassCountsHook`` (in ``custom_hooks``), which calls
    :meth:`set_class_counts` with the training set's counts (or those stored in the
    checkpoint when testing); ``class_counts=[...]`` overrides them.

    Distributed evaluation: each rank stores ``(gt, top-k predictions)`` per sample;
    mmengine's ``BaseMetric.evaluate`` gathers them on rank 0 (dropping the sampler's
    padding) and broadcasts the result, so every rank reports the same numbers.

    Args:
        topk (int | Sequence[int]): overall top-k accuracies. Defaults to ``(1, 5)``.
        many_thr (int): classes with more than ``many_thr`` training images are many-shot.
            Defaults to 100.
        few_thr (int): classes with fewer than ``few_thr`` training images are few-shot.
            Defaults to 20.
        class_counts (Sequence[int], optional): per-class training counts; overrides the
            counts published by ``ClassCountsHook``. Defaults to None.
        per_class_out (str, optional): write per-class accuracies after every evaluation,
            as CSV (``.csv``) or JSON (``.json``). An absolute path is used as is; a
            relative one is resolved against the run's work dir: the one given by
            :meth:`set_work_dir` if called, else inferred from the current MMLogger's log
            file (``<work_dir>/<timestamp>/<timestamp>.log``), else the current directory.
            ``tools/analysis/plot_per_class_accuracy.py`` plots the file. Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'`` for gathering across ranks.
            Defaults to ``'cpu'``.
        prefix (str, optional): key prefix; defaults to ``'shot'`` (``shot/top1``,
            ``shot/top5``, ``shot/many``, ``shot/medium``, ``shot/few``).
    """

    default_prefix: Optional[str] = 'shot'

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, 5),
                 many_thr: int = 100,
                 few_thr: int = 20,
                 class_counts: Optional[Sequence[int]] = None,
                 per_class_out: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (int(topk), ) if isinstance(topk, int) else tuple(int(k) for k in topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f'ShotAccuracy: `topk` must be positive integers, got {topk}.')
        if few_thr > many_thr:
            raise ValueError(f'ShotAccuracy: `few_thr` ({few_thr}) must not exceed '
                             f'`many_thr` ({many_thr}).')
        self.many_thr, self.few_thr = int(many_thr), int(few_thr)
        self._explicit_counts = class_counts is not None
        self.class_counts = (None if class_counts is None else
                             np.asarray(class_counts, dtype=np.int64).reshape(-1))
        if per_class_out is not None and not str(per_class_out).lower().endswith(
                ('.csv', '.json')):
            raise ValueError('ShotAccuracy: `per_class_out` must end in .csv or .json, got '
                             f'{per_class_out!r}.')
        self.per_class_out = per_class_out
        self.work_dir: Optional[str] = None

    # -- inputs from hooks --------------------------------------------------------------
    def set_class_counts(self, counts) -> None:
        """Training counts ``N_c`` (called by ``ClassCountsHook``); an explicit
        ``class_counts`` argument takes precedence."""
        if self._explicit_counts:
            return
        if isinstance(counts, torch.Tensor):
            counts = counts.detach().cpu().numpy()
        self.class_counts = np.asarray(counts, dtype=np.int64).reshape(-1)

    def set_work_dir(self, work_dir: str) -> None:
        """Directory that a relative ``per_class_out`` is resolved against."""
        self.work_dir = work_dir

    # -- BaseMetric -----------------------------------------------------------------------
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep, per sample, the label and the ``max(topk)`` best predictions."""
        if not data_samples:
            return
        gts = torch.cat([torch.as_tensor(ds['gt_label']).reshape(-1)[:1].cpu()
                         for ds in data_samples])
        if 'pred_score' in data_samples[0]:
            scores = torch.stack([ds['pred_score'].detach().float().cpu()
                                  for ds in data_samples])
            k = min(max(self.topk), scores.shape[1])
            preds = scores.topk(k, dim=1).indices
            num_classes = scores.shape[1]
        else:  # only labels: top-1 only
            preds = torch.stack([torch.as_tensor(ds['pred_label']).reshape(-1)[:1].cpu()
                                 for ds in data_samples])
            num_classes = None
        for gt, pred in zip(gts, preds):
            self.results.append(dict(gt=int(gt), pred=pred, num_classes=num_classes))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        counts = self._require_counts()
        num_classes = len(counts)
        if not results:
            return {}
        gts = torch.tensor([r['gt'] for r in results], dtype=torch.long)
        kmax = min(len(r['pred']) for r in results)
        preds = torch.stack([r['pred'][:kmax] for r in results])
        score_classes = results[0]['num_classes']
        if score_classes is not None and score_classes != num_classes:
            raise ValueError(
                f'ShotAccuracy: the model scores {score_classes} classes but class_counts '
                f'has {num_classes}; the counts must come from the same label space '
                '(check `class_counts` or the training set given to ClassCountsHook).')
        if gts.numel() and (gts.min() < 0 or gts.max() >= num_classes):
            raise ValueError(f'ShotAccuracy: evaluation labels outside [0, {num_classes}) '
                             'of class_counts.')
        hits = preds == gts[:, None]  # (N, kmax)
        metrics: Dict[str, float] = {}
        for k in self.topk:
            if score_classes is not None and k > score_classes:
                continue  # top-k undefined with fewer than k classes
            if k > kmax:
                continue  # only labels were predicted
            metrics[f'top{k}'] = float(hits[:, :k].any(1).double().mean() * 100)

        correct = torch.bincount(gts, weights=hits[:, 0].double(), minlength=num_classes)
        tested = torch.bincount(gts, minlength=num_classes)
        per_class = torch.where(tested > 0, correct / tested.clamp(min=1) * 100,
                                torch.full_like(correct, float('nan')))
        split_of = self.split_of(counts)
        absent = []
        for split in SPLITS:
            members = torch.from_numpy(split_of == split) & (tested > 0)
            if members.any():
                metrics[split] = float(per_class[members].mean())
            else:
                absent.append(split)
        sizes = ', '.join(f'{s} {int((split_of == s).sum())}' for s in SPLITS)
        print_log(f'ShotAccuracy: classes per split ({sizes}; many > {self.many_thr}, '
                  f'few < {self.few_thr} training images)', logger='current')
        if absent:
            print_log(f'ShotAccuracy: no evaluated class in split(s) {", ".join(absent)}; '
                      'reported as absent, not 0.', logger='current')
        if self.per_class_out:
            self._write_per_class(counts, tested.numpy(), per_class.numpy(), split_of,
                                  metrics)
        return metrics

    # -- helpers --------------------------------------------------------------------------
    def split_of(self, counts: np.ndarray) -> np.ndarray:
        """'many' / 'medium' / 'few' per class from training counts."""
        counts = np.asarray(counts)
        return np.where(counts > self.many_thr, 'many',
                        np.where(counts < self.few_thr, 'few', 'medium'))

    def _require_counts(self) -> np.ndarray:
        if self.class_counts is None:
            raise RuntimeError(
                'ShotAccuracy has no training class counts. Add '
                "dict(type='ClassCountsHook') to `custom_hooks` (it reads them from the "
                'training set or the checkpoint meta), or pass `class_counts=[...]` to '
                'the metric in `val_evaluator` / `test_evaluator`.')
        return self.class_counts

    def resolve_out_path(self, path: Optional[str] = None) -> str:
        """Where ``per_class_out`` (or another relative ``path``) is written (see the class
        docstring)."""
        path = osp.expanduser(self.per_class_out if path is None else path)
        if osp.isabs(path):
            return path
        base = self.work_dir
        if base is None:
            log_file = getattr(MMLogger.get_current_instance(), 'log_file', None)
            if log_file:
                log_dir = osp.dirname(osp.abspath(log_file))
                stem = osp.splitext(osp.basename(log_file))[0]
                # Runner layout: <work_dir>/<timestamp>/<timestamp>.log
                base = osp.dirname(log_dir) if stem.startswith(osp.basename(log_dir)) \
                    else log_dir
        return osp.join(base or os.getcwd(), path)

    def _write_per_class(self, counts, tested, per_class, split_of, metrics) -> None:
        names = (self.dataset_meta or {}).get('classes')
        rows = []
        for c in range(len(counts)):
            acc = per_class[c]
            rows.append(dict(class_index=c,
                             class_name=str(names[c]) if names and c < len(names) else str(c),
                             train_count=int(counts[c]), test_count=int(tested[c]),
                             accuracy=None if np.isnan(acc) else float(acc),
                             split=str(split_of[c])))
        path = self.resolve_out_path()
        os.makedirs(osp.dirname(path) or '.', exist_ok=True)
        if path.lower().endswith('.csv'):
            with open(path, 'w', newline='') as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: ('' if v is None else v) for k, v in row.items()})
        else:
            with open(path, 'w') as f:
                json.dump(dict(many_thr=self.many_thr, few_thr=self.few_thr,
                               metrics=metrics, per_class=rows), f, indent=1)
        print_log(f'ShotAccuracy: per-class accuracies written to {path}', logger='current')
