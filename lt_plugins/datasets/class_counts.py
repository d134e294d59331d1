"""One way to get per-class training counts ``N_c`` from any dataset.

Samplers, heads and metrics all call :func:`get_class_counts`; long-tailed datasets of this
package expose ``class_counts`` directly, any other MMPretrain dataset is counted from
``get_gt_labels()``.
"""
from typing import Optional, Sequence

import numpy as np


def labels_to_counts(labels: Sequence[int], num_classes: int,
                     source: str = 'dataset') -> np.ndarray:
    """Count labels per class, refusing labels outside ``[0, num_classes)``."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][:5].tolist()
        raise ValueError(
            f'{source}: labels {bad} are outside [0, num_classes={num_classes}). '
            'Check the label column of the annotation file or set `classes` / '
            '`num_classes` to cover every label.')
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def get_gt_labels(dataset) -> np.ndarray:
    """Per-sample labels of a dataset (unwrapping mmengine's dataset wrappers)."""
    if hasattr(dataset, 'get_gt_labels'):
        return np.asarray(dataset.get_gt_labels(), dtype=np.int64)
    if hasattr(dataset, 'datasets'):  # ConcatDataset
        return np.concatenate([get_gt_labels(d) for d in dataset.datasets])
    if hasattr(dataset, 'dataset') and hasattr(dataset, 'times'):  # RepeatDataset
        return np.tile(get_gt_labels(dataset.dataset), dataset.times)
    raise TypeError(
        f'{type(dataset).__name__} has no get_gt_labels(): class-aware samplers and '
        'class counts need a dataset that can list its labels (any MMPretrain '
        'BaseDataset can).')


def num_classes_of(dataset) -> Optional[int]:
    """Number of classes declared by a dataset's metainfo, or None."""
    if hasattr(dataset, 'num_classes'):
        return int(dataset.num_classes)
    meta = getattr(dataset, 'metainfo', None) or {}
    classes = meta.get('classes')
    if classes:
        return len(classes)
    if hasattr(dataset, 'datasets'):
        return num_classes_of(dataset.datasets[0])
    if hasattr(dataset, 'dataset'):
        return num_classes_of(dataset.dataset)
    return None


def get_class_counts(dataset, num_classes: Optional[int] = None) -> np.ndarray:
    """Per-class number of samples ``N_c`` of ``dataset`` as an int64 array of length C."""
    counts = getattr(dataset, 'class_counts', None)
    if counts is not None:
        return np.asarray(counts, dtype=np.int64)
    labels = get_gt_labels(dataset)
    num_classes = num_classes or num_classes_of(dataset)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    return labels_to_counts(labels, num_classes, type(dataset).__name__)
