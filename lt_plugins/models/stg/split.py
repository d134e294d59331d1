"""Head / tail class split shared by the STG stages."""
from typing import Union

import torch

Threshold = Union[int, str]


def check_threshold(threshold: Threshold, field: str = 'model.head.head_threshold') -> Threshold:
    """Validate a ``head_threshold``: an int count, ``'median'`` or ``'q<p>'`` (a quantile
    ``0 < p < 1`` of the class counts, e.g. ``'q0.5'`` = ``'median'``)."""
    if isinstance(threshold, str):
        if threshold == 'median':
            return threshold
        if threshold.startswith('q'):
            try:
                p = float(threshold[1:])
            except ValueError:
                p = -1.0
            if 0.0 < p < 1.0:
                return threshold
        raise ValueError(f"`{field}={threshold!r}`: give an int count, 'median' or "
                         "'q<p>' with 0 < p < 1 (e.g. 'q0.5').")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"`{field}` must be an int, 'median' or 'q<p>', got "
                        f'{type(threshold).__name__}.')
    return int(threshold)


def resolve_threshold(class_counts: torch.Tensor, threshold: Threshold) -> float:
    """The count threshold of a split: ``threshold`` itself when it is a number, else the
    median / ``p``-quantile (linear interpolation, ``torch.quantile``) of the counts of the
    classes that have training images."""
    threshold = check_threshold(threshold)
    if not isinstance(threshold, str):
        return float(threshold)
    counts = torch.as_tensor(class_counts).reshape(-1).double()
    present = counts[counts > 0]
    if present.numel() == 0:
        return 0.0
    p = 0.5 if threshold == 'median' else float(threshold[1:])
    return float(torch.quantile(present, p))


def head_tail_split(class_counts: torch.Tensor, threshold: Threshold,
                    field: str = 'model.head.head_threshold') -> torch.Tensor:
    """Head-class mask ``N_c > threshold`` with clear errors for a degenerate split.

    STG trains its generator on head classes (stage 2) and augments tail classes (stage 3):
    both sets must be non-empty. ``threshold='median'`` makes the head the classes above the
    median count and the tail the others (CIFAR-10-LT IR100: median 516, 5 head / 5 tail
    classes, where 100 gives 8 / 2); ``'q<p>'`` uses the ``p``-quantile.

    Args:
        class_counts (Tensor): ``(C,)`` training counts ``N_c``.
        threshold (int | str): a class is *head* when it has more than this many training
            images; ``'median'`` / ``'q<p>'``: the median / ``p``-quantile of the counts.
        field (str): config field named in the error messages.

    Returns:
        Tensor: ``(C,)`` bool, True for head classes.
    """
    counts = torch.as_tensor(class_counts).long().reshape(-1)
    if counts.numel() == 0 or int(counts.sum()) == 0:
        raise RuntimeError(
            'STG: missing class counts. Add `dict(type=\'ClassCountsHook\')` to '
            '`custom_hooks` (configs/_base_/default_runtime.py has it) or set '
            '`model.head.class_counts=[...]`.')
    threshold = resolve_threshold(counts, threshold) if isinstance(threshold, str) else int(
        threshold)
    head = counts > threshold
    if not bool(head.any()):
        raise ValueError(
            f'STG: `{field}={threshold}` leaves no head class (largest class has '
            f'{int(counts.max())} training images); the generator is trained on head classes '
            f'only. Lower `{field}` below {int(counts.max())}.')
    tail = ~head & (counts > 0)
    if not bool(tail.any()):
        present = counts[counts > 0]
        raise ValueError(
            f'STG: `{field}={threshold}` leaves no tail class (smallest class has '
            f'{int(present.min())} training images), so there is nothing to augment. Raise '
            f'`{field}` to at least {int(present.min())}.')
    return head
