"""Head / tail class split shared by the STG stages."""
import torch


def head_tail_split(class_counts: torch.Tensor, threshold: int,
                    field: str = 'model.head.head_threshold') -> torch.Tensor:
    """Head-class mask ``N_c > threshold`` with clear errors for a degenerate split.

    STG trains its generator on head classes (stage 2) and augments tail classes (stage 3):
    both sets must be non-empty.

    Args:
        class_counts (Tensor): ``(C,)`` training counts ``N_c``.
        threshold (int): a class is *head* when it has more than this many training images.
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
    head = counts > int(threshold)
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
