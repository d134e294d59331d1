"""Carry the training set's per-class counts to heads, metrics and checkpoints."""
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS

from lt_plugins.datasets.class_counts import get_class_counts

CHECKPOINT_KEY = 'lt_class_counts'


def _loop(runner, name: str):
    loop = getattr(runner, f'_{name}_loop', None)
    return loop if isinstance(loop, BaseLoop) else None


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Publish the training class counts ``N_c`` to every component that needs them.

    Sources, first match wins: ``class_counts`` given here (explicit override), the
    training dataset (when the runner trains), the ``meta['lt_class_counts']`` entry of a
    loaded checkpoint (``tools/test.py`` builds no training set), or a head buffer that
    came with the weights.

    Targets: every model sub-module with a ``set_class_counts(tensor)`` method (heads,
    memory banks) and every evaluator metric with ``set_class_counts(array)``
    (``ShotAccuracy``). The counts are written into each saved checkpoint's meta.

    Checks, when the counts arrive: every model sub-module outside the backbone with an
    integer ``num_classes`` (heads, memory banks) must cover the highest class that has samples;
    otherwise a ValueError names the config field (``model.head.num_classes``) instead of
    the loss failing later with "Target 7 is out of bounds".

    Args:
        class_counts (Sequence[int], optional): explicit counts; overrides the dataset.
    """

    priority = 'VERY_HIGH'

    def __init__(self, class_counts: Optional[Sequence[int]] = None) -> None:
        self.class_counts = (None if class_counts is None else
                             np.asarray(class_counts, dtype=np.int64))

    # -- sources --------------------------------------------------------------
    def before_run(self, runner) -> None:
        train_loop = _loop(runner, 'train')
        if self.class_counts is None and train_loop is not None:
            self.class_counts = get_class_counts(train_loop.dataloader.dataset)
            runner.logger.info(
                f'ClassCountsHook: {len(self.class_counts)} classes, '
                f'{int(self.class_counts.sum())} training samples, '
                f'imbalance ratio {self._imbalance_ratio():.1f}')
        self._publish(runner)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        stored = checkpoint.get('meta', {}).get(CHECKPOINT_KEY)
        if stored is None:
            return
        stored = np.asarray(stored, dtype=np.int64)
        if self.class_counts is None:
            self.class_counts = stored
        elif not np.array_equal(stored, self.class_counts):
            runner.logger.warning(
                'ClassCountsHook: the checkpoint was trained with other class counts '
                f'({stored.tolist()[:10]}...) than this run ({self.class_counts.tolist()[:10]}'
                '...); using this run\'s.')
        self._publish(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.class_counts is not None:
            checkpoint.setdefault('meta', {})[CHECKPOINT_KEY] = self.class_counts.tolist()

    def before_val(self, runner) -> None:
        self._publish(runner)

    def before_test(self, runner) -> None:
        if self.class_counts is None:
            self.class_counts = self._counts_from_model(runner)
        self._publish(runner)

    # -- helpers --------------------------------------------------------------
    def _imbalance_ratio(self) -> float:
        nonzero = self.class_counts[self.class_counts > 0]
        return float(nonzero.max() / nonzero.min()) if nonzero.size else float('nan')

    @staticmethod
    def _counts_from_model(runner) -> Optional[np.ndarray]:
        for module in runner.model.modules():
            counts = getattr(module, 'class_counts', None)
            if isinstance(counts, torch.Tensor) and counts.numel() and counts.sum() > 0:
                return counts.detach().cpu().numpy().astype(np.int64)
        return None

    def _check_num_classes(self, runner) -> None:
        present = np.flatnonzero(self.class_counts > 0)
        needed = int(present[-1]) + 1 if present.size else 0
        for name, module in runner.model.named_modules():
            num_classes = getattr(module, 'num_classes', None)
            if not isinstance(num_classes, int) or isinstance(num_classes, bool):
                continue
            name = name[len('module.'):] if name.startswith('module.') else name
            if name.split('.', 1)[0] == 'backbone':  # e.g. timm's num_classes=0 (no classifier)
                continue
            if num_classes < needed:
                field = f'model.{name}.num_classes' if name else 'model.num_classes'
                raise ValueError(
                    f'{field}={num_classes} ({type(module).__name__}) but the training set '
                    f'has {len(self.class_counts)} classes with samples up to class '
                    f'{needed - 1}: set {field}={len(self.class_counts)} in the config '
                    f'(e.g. --cfg-options {field}={len(self.class_counts)}).')

    def _publish(self, runner) -> None:
        if self.class_counts is None:
            return
        self._check_num_classes(runner)
        counts = torch.as_tensor(self.class_counts, dtype=torch.long)
        for module in runner.model.modules():
            if hasattr(module, 'set_class_counts'):
                module.set_class_counts(counts)
        for name in ('val', 'test'):
            loop = _loop(runner, name)
            if loop is None:
                continue
            for metric in loop.evaluator.metrics:
                if hasattr(metric, 'set_class_counts'):
                    metric.set_class_counts(self.class_counts)
                if hasattr(metric, 'set_work_dir'):
                    metric.set_work_dir(runner.work_dir)
