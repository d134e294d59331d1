"""An epoch-based train loop that resumes inside an epoch without replaying it."""
from typing import Iterator

from mmengine.logging import MMLogger
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import LOOPS


@LOOPS.register_module()
class MidEpochResumeTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` that skips the iterations a checkpoint already did.

    An iteration checkpoint taken inside an epoch (``CheckpointHook(by_epoch=False)``, a
    preempted job) stores ``epoch = e`` finished epochs and ``iter = i`` finished iterations.
    mmengine's loop resumes it by running epoch ``e`` from its first batch again, so
    ``i - e * len(dataloader)`` batches are trained twice (memories, counters and weights
    run ahead of an uninterrupted run). This loop starts epoch ``e`` at batch
    ``i - e * len(dataloader)`` of the same draw instead:

    * samplers with ``skip_next(n)`` (the package's samplers,
      :mod:`lt_plugins.datasets.samplers`) start their next pass ``n`` indices later, so the
      skipped batches are never loaded;
    * any other sampler (e.g. mmengine's ``DefaultSampler``) is iterated and the first
      batches are dropped: the same batches, at the cost of loading them.

    Hooks see the true ``batch_idx`` (counted from the start of the epoch). Everything else
    is mmengine's loop; with ``iter`` on an epoch boundary (an epoch checkpoint, a fresh run)
    nothing is skipped. ``import lt_plugins`` makes it the loop of every
    ``train_cfg = dict(by_epoch=True, ...)`` (see :mod:`lt_plugins.compat`); name
    ``type='EpochBasedTrainLoop'`` to keep mmengine's.

    Args: as ``mmengine.runner.EpochBasedTrainLoop`` (``runner, dataloader, max_epochs,
    val_begin=1, val_interval=1, dynamic_intervals=None``).
    """

    def iters_done_in_epoch(self) -> int:
        """Batches of the current epoch that the restored ``iter`` says were trained."""
        per_epoch = len(self.dataloader)
        done = self._iter - self._epoch * per_epoch
        if not 0 <= done <= per_epoch:
            MMLogger.get_current_instance().warning(
                f'MidEpochResumeTrainLoop: iteration {self._iter} does not lie in epoch '
                f'{self._epoch} of {per_epoch} iterations (did the batch size or dataset '
                'change since the checkpoint?); running the whole epoch.')
            return 0
        return done

    def _batches(self, skip: int) -> Iterator:
        if skip == 0:
            return iter(self.dataloader)
        sampler = getattr(self.dataloader, 'sampler', None)
        batch_size = getattr(self.dataloader, 'batch_size', None)
        logger = MMLogger.get_current_instance()
        if hasattr(sampler, 'skip_next') and batch_size is not None:
            sampler.skip_next(skip * batch_size)
            logger.info(f'Resuming inside epoch {self._epoch}: the sampler skips the '
                        f'{skip} batches already trained.')
            return iter(self.dataloader)
        logger.info(f'Resuming inside epoch {self._epoch}: loading and dropping the {skip} '
                    f'batches already trained ({type(sampler).__name__} cannot skip).')
        batches = iter(self.dataloader)
        for _ in range(skip):
            next(batches)
        return batches

    def run_epoch(self) -> None:
        """Iterate the rest of the current epoch (all of it unless resumed inside it)."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        skip = self.iters_done_in_epoch()
        for idx, data_batch in enumerate(self._batches(skip), start=skip):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
