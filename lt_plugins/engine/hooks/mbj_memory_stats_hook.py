"""Log what an MBJ memory holds: fill, class shares, staleness, within-class angular spread."""
import math
from typing import Dict

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from lt_plugins.memory.rebalanced_fifo import RebalancedFIFOMemory


def within_class_angular_spread(feats: torch.Tensor, labels: torch.Tensor,
                                num_classes: int) -> torch.Tensor:
    """Per-class mean angle (degrees) between memorised vectors and their class mean direction.

    The quantity of MBJ Fig. 2 ("angular variance" of accumulated features / prototypes).
    Vectorised over entries; ``NaN`` for classes with fewer than two entries.
    """
    out = torch.full((num_classes, ), float('nan'), dtype=torch.float64)
    if labels.numel() == 0:
        return out
    f = F.normalize(feats.double(), dim=1)
    mean = torch.zeros(num_classes, f.shape[1], dtype=f.dtype).index_add_(0, labels.cpu(), f.cpu())
    mean = F.normalize(mean, dim=1)
    cos = (f.cpu() * mean[labels.cpu()]).sum(1).clamp(-1.0, 1.0)
    angle = torch.rad2deg(torch.acos(cos))
    cnt = torch.bincount(labels.cpu(), minlength=num_classes)
    tot = torch.zeros(num_classes, dtype=f.dtype).index_add_(0, labels.cpu(), angle)
    ok = cnt >= 2
    out[ok] = tot[ok] / cnt[ok]
    return out


def memory_statistics(bank: RebalancedFIFOMemory, many_shot_thr: int = 100,
                      per_class_max: int = 20) -> Dict[str, float]:
    """Fill ratio, class shares, staleness and angular spreads of one memory bank.

    Class shares: fraction of the stored entries per class (``share_max`` / ``share_min`` over
    the classes present, and ``share_c<i>`` for every class when ``C <= per_class_max``); with
    eta, they are the prior the memory term pushes the classifier towards (Eq. 1-2).
    Staleness: age of the stored features in training iterations (``bank.staleness()``):
    ``staleness_mean`` / ``_max`` and the mean over many-shot / tail entries; NaN when no
    stored entry has a known age.
    """
    feats, labels = bank.get()
    counts = bank.class_counts.cpu()
    many = counts > many_shot_thr
    occ = torch.bincount(labels.cpu(), minlength=bank.num_classes).double()
    total = max(float(occ.sum()), 1.0)
    spread = within_class_angular_spread(feats, labels, bank.num_classes)

    def _nanmean(x):
        x = x[~torch.isnan(x)]
        return float(x.mean()) if x.numel() else float('nan')

    stats = dict(fill=bank.fill_ratio(),
                 many_share=float(occ[many].sum()) / total,
                 tail_share=float(occ[~many].sum()) / total,
                 classes_present=float((occ > 0).sum()),
                 spread_deg=_nanmean(spread),
                 spread_many_deg=_nanmean(spread[many]),
                 spread_tail_deg=_nanmean(spread[~many]))
    share = occ / total
    present = occ > 0
    stats['share_max'] = float(share.max()) if bool(present.any()) else float('nan')
    stats['share_min'] = float(share[present].min()) if bool(present.any()) else float('nan')
    if bank.num_classes <= per_class_max:
        for c in range(bank.num_classes):
            stats[f'share_c{c}'] = float(share[c])
    age = bank.staleness().cpu()
    slot_labels = bank.labels.cpu()
    known = age >= 0
    slot_many = torch.zeros_like(known)
    slot_many[known] = many[slot_labels[known]]

    def _mean_age(mask):
        return float(age[mask].double().mean()) if bool(mask.any()) else float('nan')

    stats['staleness_mean'] = _mean_age(known)
    stats['staleness_max'] = float(age[known].max()) if bool(known.any()) else float('nan')
    stats['staleness_many'] = _mean_age(known & slot_many)
    stats['staleness_tail'] = _mean_age(known & ~slot_many)
    return stats


@HOOKS.register_module()
class MBJMemoryStatsHook(Hook):
    """Every ``interval`` training iterations, log the state of each MBJ memory bank.

    Logged through mmengine's message hub (``train/<bank>/<stat>``, printed by ``LoggerHook``
    and written to the visualiser backends) and as one ``runner.logger`` line: fill ratio,
    share of memorised entries from many-shot classes (``N_c > many_shot_thr``) vs the rest
    (the tail), number of classes present, the class shares (largest / smallest, and per
    class for up to ``per_class_max`` classes), the staleness of the stored features (age
    in iterations since their write: mean, max, many-shot, tail) and the within-class
    angular spread of memorised vectors in degrees (MBJ Fig. 2), overall / many-shot / tail.
    A memory that stays empty, holds only head classes, is dominated by the rarest class
    (an over-correcting prior under eta), holds features much older than the backbone's
    recent updates, or shows ~0 degrees of spread explains an MBJ run that does not help.

    Args:
        interval (int): iterations between two reports. Defaults to 50.
        many_shot_thr (int): head/tail threshold on training counts. Defaults to 100.
        per_class_max (int): log ``share_c<i>`` of every class when ``C`` is at most this.
            Defaults to 20.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50, many_shot_thr: int = 100,
                 per_class_max: int = 20) -> None:
        if interval < 1:
            raise ValueError(f'MBJMemoryStatsHook: interval must be >= 1, got {interval}.')
        self.interval = interval
        self.many_shot_thr = many_shot_thr
        self.per_class_max = int(per_class_max)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for name, module in model.named_modules():
            if not isinstance(module, RebalancedFIFOMemory):
                continue
            stats = memory_statistics(module, self.many_shot_thr, self.per_class_max)
            for key, value in stats.items():
                if not math.isnan(value):
                    runner.message_hub.update_scalar(f'train/{name}/{key}', value)
            runner.logger.info(f'{name}: ' + ', '.join(f'{k}={v:.3f}' for k, v in stats.items()))
