"""Lay-Back Learning Schedule (LBLS) of AFA: switch on ``lambda * L_all`` at epoch ``t``."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class LBLSHook(Hook):
    """Lay-Back Learning Schedule, Eq. 12 of Wang et al. (AFA).

    ``L = L_ori`` while ``runner.epoch < start`` (0-based epochs, or ``runner.iter <
    start`` with ``by_epoch=False``) and ``L = L_ori + weight * L_all`` from then on. The
    hook only sets the schedule: every model sub-module with a ``set_lbls_weight(float)``
    method receives ``0`` before ``start`` and ``weight`` afterwards (``AFAClsHead``
    weights ``L_all`` with it; ``AFANeck`` generates features only while it is positive, so
    early epochs train on real samples only, as the paper describes). The value is derived
    from the runner's epoch/iteration before every epoch and iteration, so a resumed run
    continues with the right one. It is logged once per epoch (``LBLS: ...`` in the log)
    and as the scalar ``train/lbls_weight`` every iteration.

    Args:
        start (int): ``t``, the first epoch (or iteration) that uses ``L_all``.
            Defaults to 30 (of 90 epochs).
        weight (float): ``lambda``, the weight of ``L_all``. Defaults to 2.0.
        by_epoch (bool): count ``start`` in epochs (True) or iterations. Defaults to True.
    """

    priority = 'NORMAL'

    def __init__(self, start: int = 30, weight: float = 2.0, by_epoch: bool = True) -> None:
        if start < 0:
            raise ValueError(f'LBLSHook: start (t of Eq. 12) must be >= 0, got {start}.')
        if weight < 0:
            raise ValueError(f'LBLSHook: weight (lambda of Eq. 12) must be >= 0, got {weight}.')
        self.start = int(start)
        self.weight = float(weight)
        self.by_epoch = by_epoch
        self.current: Optional[float] = None

    def weight_at(self, step: int) -> float:
        """``lambda_t`` of Eq. 12 at 0-based epoch (or iteration) ``step``."""
        return self.weight if step >= self.start else 0.0

    def _apply(self, runner, value: float) -> int:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        targets = [m for m in model.modules() if callable(getattr(m, 'set_lbls_weight', None))]
        if not targets:
            raise RuntimeError(
                'LBLSHook: no model sub-module has set_lbls_weight(); use a head such as '
                "AFAClsHead (model.head.type='AFAClsHead') or remove the hook.")
        for module in targets:
            module.set_lbls_weight(value)
        self.current = value
        return len(targets)

    def before_train(self, runner) -> None:
        loop = getattr(runner, 'train_loop', None)
        if self.by_epoch and isinstance(loop, IterBasedTrainLoop):
            raise ValueError(
                'LBLSHook(by_epoch=True) counts epochs, but train_cfg is iteration based '
                '(IterBasedTrainLoop: runner.epoch stays 0): set by_epoch=False and give '
                '`start` in iterations.')
        step = runner.epoch if self.by_epoch else runner.iter
        self._apply(runner, self.weight_at(step))

    def before_train_epoch(self, runner) -> None:
        if not self.by_epoch:
            return
        value = self.weight_at(runner.epoch)
        self._apply(runner, value)
        phase = 'L_ori' if value == 0 else f'L_ori + {value:g} * L_all'
        runner.logger.info(f'LBLS: epoch {runner.epoch} (0-based), t={self.start}: '
                           f'L = {phase}')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self.by_epoch:
            value = self.weight_at(runner.iter)
            if value != self.current:
                self._apply(runner, value)
                runner.logger.info(f'LBLS: iteration {runner.iter}, t={self.start}: '
                                   f'L_all weight {value:g}')
        runner.message_hub.update_scalar('train/lbls_weight', self.current)
