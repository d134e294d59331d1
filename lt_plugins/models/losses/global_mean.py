"""Weighted means over the global batch under DDP (LDAM-DRW, STG stage 2)."""
import torch
from mmengine import dist

NORMALIZE_OVER = ('global', 'rank')


def check_normalize_over(value: str, owner: str) -> str:
    """``value`` must be ``'global'`` or ``'rank'``; the error names ``owner``'s argument."""
    if value not in NORMALIZE_OVER:
        raise ValueError(f"{owner}: normalize_over must be 'global' (the weighted mean over "
                         "the batch of all ranks: DDP equals one process on the concatenated "
                         "batch) or 'rank' (over each rank's batch, as the reference code "
                         f"under DDP), got {value!r}.")
    return value


def global_weighted_mean(weighted_sum: torch.Tensor, weight_sum: torch.Tensor) -> torch.Tensor:
    """This rank's share of the global weighted mean ``sum_i w_i l_i / sum_i w_i``.

    ``weighted_sum`` is this rank's ``sum_i w_i l_i`` (with its graph), ``weight_sum`` its
    ``sum_i w_i`` (a constant). Under DDP the weight sums are all-reduced (one collective,
    every rank must call it) and the result is ``W * weighted_sum / sum_ranks(weight_sum)``:
    DDP averages gradients over the ``W`` ranks, so the update equals one process on the
    concatenated batch, and the mean of the ranks' values is the global loss (each rank logs
    its share). One process: ``weighted_sum / weight_sum``.
    """
    world = dist.get_world_size()
    if world == 1:
        return weighted_sum / weight_sum
    total = weight_sum.detach().to(torch.float64).reshape(1).clone()
    dist.all_reduce(total)  # sum over ranks
    return weighted_sum * (world / total.to(weighted_sum.dtype)).squeeze(0)
