"""How much the feature cache speeds up a frozen-backbone stage (``run.py --time-feature-cache``).

A stage marked ``cacheable`` (STG stages 2 and 3) trains on a frozen backbone, so a
:class:`~lt_plugins.engine.hooks.FeatureCacheHook` can extract the features once and train
on them. :func:`time_feature_cache` trains the stage for a few epochs from its parent's
checkpoint, once with the live backbone and once on cached features, in this process, and
reports seconds per epoch of each, the one-off extraction time and the speed-up of the
stage's configured schedule: ``E * live / (extract + E * cached)`` for ``E`` epochs.
"""
import os.path as osp
import time
from typing import Dict, List, Optional

from .arms import Stage
from .configs import build_stage_config
from .datasets import DatasetSpec


def _epoch_timer():
    from mmengine.hooks import Hook

    class EpochTimer(Hook):
        """Wall time of every training epoch."""
        priority = 'LOWEST'

        def __init__(self):
            self.times: List[float] = []

        def before_train_epoch(self, runner):
            self._t = time.perf_counter()

        def after_train_epoch(self, runner):
            self.times.append(time.perf_counter() - self._t)

    return EpochTimer()


def time_feature_cache(stage: Stage, spec: DatasetSpec, schedule: str, seed: int,
                       work_dir: str, load_from: str, epochs: int = 2, views: int = 1,
                       subset_stride: int = 1,
                       quick_indices: Optional[Dict[str, List[int]]] = None,
                       device: str = 'cpu') -> Dict[str, float]:
    """Time ``epochs`` epochs of ``stage`` live and on ``views`` cached views.

    Args:
        stage: a ``cacheable`` stage.
        spec, schedule, seed: as for :func:`~.configs.build_stage_config`.
        work_dir: where the two timing runs write their logs (no checkpoints).
        load_from: the parent stage's checkpoint.
        epochs: epochs timed per mode (their mean is reported).
        views: cached views per image (``FeatureCacheHook.num_views``).
        subset_stride: time on every k-th training image only (every class keeps a share).
        quick_indices: the ``--quick`` images.
        device: ``'cpu'`` or ``'cuda'``.
    """
    from mmengine.runner import Runner
    from mmpretrain.registry import DATASETS

    if not stage.cacheable:
        raise ValueError(f'stage {stage.key!r} is not cacheable (it trains the backbone): '
                         'only frozen-backbone stages can be timed with a feature cache')
    if epochs < 1 or views < 1 or subset_stride < 1:
        raise ValueError(f'--time-feature-cache {epochs}, views {views}, --time-stride '
                         f'{subset_stride}: each must be >= 1')
    res: Dict[str, float] = dict(epochs_timed=epochs, views=views,
                                 subset_stride=subset_stride)
    for mode, n in (('live', 0), ('cached', views)):
        cfg = build_stage_config(stage, spec, schedule, seed,
                                 osp.join(osp.abspath(work_dir), f'speed-{mode}'), load_from,
                                 quick_indices, device, False, n)
        res['epochs_in_config'] = int(cfg.train_cfg.max_epochs)
        cfg.merge_from_dict({
            'train_cfg.max_epochs': epochs, 'train_cfg.val_begin': epochs + 1,
            'train_cfg.val_interval': epochs + 1,
            'default_hooks.checkpoint': dict(type='CheckpointHook', interval=epochs + 1,
                                             save_last=False)})
        if subset_stride > 1:
            ds = cfg.train_dataloader.dataset
            idx = ds.get('indices')
            if idx is None:
                idx = range(len(DATASETS.build(dict(ds, pipeline=[]))))
            ds['indices'] = list(idx)[::subset_stride]
        runner = Runner.from_cfg(cfg)
        timer = _epoch_timer()
        runner.register_hook(timer)
        runner.train()
        res[f'{mode}_epoch_s'] = sum(timer.times) / len(timer.times)
        if n:
            hooks = [h for h in runner.hooks if type(h).__name__ == 'FeatureCacheHook']
            res['extract_s'] = hooks[0].extract_seconds
    e = res['epochs_in_config']
    res['speedup_per_epoch'] = res['live_epoch_s'] / res['cached_epoch_s']
    res['speedup_stage'] = e * res['live_epoch_s'] / (res['extract_s'] +
                                                      e * res['cached_epoch_s'])
    return res
