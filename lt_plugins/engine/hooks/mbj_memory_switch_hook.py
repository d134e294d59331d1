"""Switch MBJ's memory term on at a given epoch or iteration (single-run MBJ schedule)."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class MBJMemorySwitchHook(Hook):
    """Turn the memory loss of MBJ heads on from ``start_epoch`` / ``start_iter`` onwards.

    MBJ (Algorithm 1/2) first trains conventionally to convergence, then continues with the
    memory at a small LR. The two-phase recipe loads a CE checkpoint into an MBJ config; this
    hook gives the single-run variant: before every training iteration it sets
    ``set_memory_enabled(runner.epoch >= start_epoch)`` (or ``runner.iter >= start_iter``) on
    every module that has that method, so the state is right after a resume too. Pair it with
    a ``param_scheduler`` that lowers the LR at the same point.

    Args:
        start_epoch (int, optional): first epoch (0-based) with the memory on.
        start_iter (int, optional): first iteration (0-based) with the memory on; exactly one
            of the two must be given.
        freeze_backbone (bool): while the memory is on, keep ``backbone`` and ``neck`` frozen
            (no gradients, BatchNorm in eval mode), i.e. only the head learns. Defaults to False.
    """

    priority = 'NORMAL'

    def __init__(self, start_epoch: Optional[int] = None, start_iter: Optional[int] = None,
                 freeze_backbone: bool = False) -> None:
        if (start_epoch is None) == (start_iter is None):
            raise ValueError('MBJMemorySwitchHook: give exactly one of `start_epoch` and '
                             f'`start_iter` (got {start_epoch}, {start_iter}).')
        self.start_epoch = start_epoch
        self.start_iter = start_iter
        self.freeze_backbone = freeze_backbone
        self._state = None

    def _enabled(self, runner) -> bool:
        if self.start_iter is not None:
            return runner.iter >= self.start_iter
        return runner.epoch >= self.start_epoch

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        enabled = self._enabled(runner)
        model = _unwrap(runner.model)
        for module in model.modules():
            if hasattr(module, 'set_memory_enabled'):
                module.set_memory_enabled(enabled)
        if self.freeze_backbone and enabled:
            for name in ('backbone', 'neck'):
                part = getattr(model, name, None)
                if part is None:
                    continue
                part.eval()
                for p in part.parameters():
                    p.requires_grad_(False)
        if enabled != self._state:
            runner.logger.info(f'MBJMemorySwitchHook: memory loss {"on" if enabled else "off"} '
                               f'at epoch {runner.epoch}, iter {runner.iter}'
                               + (' (backbone frozen)' if enabled and self.freeze_backbone
                                  else ''))
            self._state = enabled
