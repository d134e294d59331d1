"""Resume into a schedule whose length differs from the checkpointed run's: the schedulers'
default ``end`` follows the run, not the checkpoint.

mmengine gives a parameter scheduler without an explicit ``end`` the run's ``max_epochs``
(``max_iters``) as its ``end`` and saves ``end`` with the scheduler state. Resuming a
checkpoint of a shorter run (a run stopped by ``max_epochs`` and extended, or a test that
stops early) then loads that shorter ``end``: the scheduler stops stepping at the old
``max_epochs``, so a ``MultiStepLR`` milestone at or after it is never applied and the
resumed run drifts from an uninterrupted one, even for a plain linear head: the step that
closed the shorter run's last epoch was counted but not applied (``last_step`` stays one
behind), so every later milestone comes one epoch late. Installed on ``import lt_plugins``
(:func:`install_scheduler_resume`): a scheduler built with the default ``end`` keeps the
``end`` of the run that resumes it, and the steps the shorter run skipped at its end are
applied on resume (logged); an ``end`` given in the config is restored from the checkpoint
as before.
"""
import functools
import weakref
from typing import Iterable

from mmengine.optim.scheduler import ReduceOnPlateauParamScheduler

#: schedulers whose ``end`` was the run's default, with that value
_DEFAULT_END: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()


def _iter_schedulers(schedulers) -> Iterable:
    if schedulers is None:
        return []
    if isinstance(schedulers, dict):
        return [s for group in schedulers.values() for s in (group or [])]
    if isinstance(schedulers, (list, tuple)):
        return list(schedulers)
    return []


def _patch_build() -> None:
    from mmengine.runner import Runner
    original = Runner._build_param_scheduler
    if getattr(original, '_lt_default_end', False):
        return

    @functools.wraps(original)
    def build(self, scheduler, optim_wrapper):
        configs = scheduler if isinstance(scheduler, (list, tuple)) else [scheduler]
        built = original(self, scheduler, optim_wrapper)
        for cfg, sched in zip(configs, built):
            if isinstance(cfg, dict) and 'end' not in cfg and hasattr(sched, 'end'):
                _DEFAULT_END[sched] = sched.end
        return built

    build._lt_default_end = True
    Runner._build_param_scheduler = build


def _patch_resume() -> None:
    from mmengine.runner import Runner
    original = Runner.resume
    if getattr(original, '_lt_default_end', False):
        return

    @functools.wraps(original)
    def resume(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        for sched in _iter_schedulers(self.param_schedulers):
            end = _DEFAULT_END.get(sched)
            if end is None or getattr(sched, 'end', end) == end:
                continue
            old_end = sched.end
            sched.end = end
            # the checkpointed run stepped past its own end without applying those steps
            # (the step that ends its last epoch): apply them now, in order
            skipped = sched._global_step - old_end + 1 if sched._global_step >= old_end else 0
            skipped = min(skipped, max(0, end - old_end))
            if skipped and not isinstance(sched, ReduceOnPlateauParamScheduler):
                sched._global_step = old_end - 1
                for _ in range(skipped):
                    sched.step()
            self.logger.info(
                f'{type(sched).__name__}: `end` {old_end} from the checkpoint replaced by '
                f'{end}, the default end of this run (max_epochs / max_iters), and the '
                f'{skipped} step(s) the shorter run did not apply applied; set `end` in the '
                'scheduler config to keep a fixed one.')
        return result

    resume._lt_default_end = True
    Runner.resume = resume


def install_scheduler_resume() -> None:
    """Keep the run's default ``end`` of schedulers on resume (see the module). Idempotent."""
    _patch_build()
    _patch_resume()


__all__ = ['install_scheduler_resume']
