"""Deferred re-weighting (DRW, Cao et al. 2019): switch class-balanced weights on at an epoch."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class DRWHook(Hook):
    """Deferred re-weighting schedule of LDAM-DRW (Cao et al. 2019, Algorithm 1).

    Before every training iteration, every model sub-module with a ``set_drw_enabled(bool)``
    method (:class:`~lt_plugins.models.losses.LDAMLoss`: class-balanced loss weights;
    :class:`~lt_plugins.models.losses.RIDEDiversityLoss`: frequency-dependent temperatures, as
    RIDE switches both at its ``reweight_epoch``) receives ``runner.epoch >= start_epoch``
    (0-based; or ``runner.iter >= start_iter``). The state is derived from the runner's
    counters, so a resumed run continues with the right one. The switch is logged once and the
    scalar ``train/drw`` is logged every iteration.

    Args:
        start_epoch (int, optional): first epoch (0-based) with re-weighting on (LDAM-DRW on
            CIFAR: 160 of 200).
        start_iter (int, optional): first iteration instead; give exactly one of the two.
    """

    priority = 'NORMAL'

    def __init__(self, start_epoch: Optional[int] = None,
                 start_iter: Optional[int] = None) -> None:
        if (start_epoch is None) == (start_iter is None):
            raise ValueError('DRWHook: give exactly one of `start_epoch` and `start_iter` '
                             f'(got {start_epoch}, {start_iter}).')
        start = start_epoch if start_epoch is not None else start_iter
        if start < 0:
            raise ValueError(f'DRWHook: the start must be >= 0, got {start}.')
        self.start_epoch = start_epoch
        self.start_iter = start_iter
        self._state: Optional[bool] = None

    def enabled_at(self, runner) -> bool:
        if self.start_iter is not None:
            return runner.iter >= self.start_iter
        return runner.epoch >= self.start_epoch

    def before_train(self, runner) -> None:
        if self.start_epoch is not None and isinstance(
                getattr(runner, 'train_loop', None), IterBasedTrainLoop):
            raise ValueError('DRWHook(start_epoch=...) counts epochs, but train_cfg is '
                             'iteration based: give `start_iter` instead.')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        enabled = self.enabled_at(runner)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        targets = [m for m in model.modules() if callable(getattr(m, 'set_drw_enabled', None))]
        if not targets:
            raise RuntimeError('DRWHook: no model sub-module has set_drw_enabled(); use '
                               "loss=dict(type='LDAMLoss') or a RIDEHead, or remove the hook.")
        for module in targets:
            module.set_drw_enabled(enabled)
        if enabled != self._state:
            runner.logger.info(f'DRWHook: deferred re-weighting {"on" if enabled else "off"} '
                               f'at epoch {runner.epoch}, iter {runner.iter} '
                               f'({len(targets)} modules)')
            self._state = enabled
        runner.message_hub.update_scalar('train/drw', float(enabled))
