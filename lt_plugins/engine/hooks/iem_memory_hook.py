"""Apply IEM's staged memory writes after each optimizer step and keep the optimizer clean."""
from typing import Dict, Iterator, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmpretrain.registry import HOOKS

DATA_BATCH = Optional[dict]


def _optimizers(runner) -> Iterator[torch.optim.Optimizer]:
    wrapper = getattr(runner, 'optim_wrapper', None)
    if wrapper is None:
        return
    wrappers = wrapper.values() if isinstance(wrapper, OptimWrapperDict) else [wrapper]
    for item in wrappers:
        optimizer = getattr(item, 'optimizer', item)
        if isinstance(optimizer, torch.optim.Optimizer):
            yield optimizer


def reset_optimizer_slots(optimizer: torch.optim.Optimizer, param: torch.Tensor,
                          mask: torch.Tensor) -> int:
    """Zero every per-element state tensor of ``param`` (Adam moments, SGD momentum) at
    the leading-dimension ``mask``; returns how many state tensors were touched."""
    state = optimizer.state.get(param)
    if not state:
        return 0
    touched = 0
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.shape == param.shape:
            value[mask.to(value.device)] = 0
            touched += 1
    return touched


def memory_value_summary(mem, per_class_max: int = 20) -> Dict[str, float]:
    """Scalars of one ``EpisodicMemory``: fill, value means and drift (see IEMMemoryHook)."""
    stats = mem.value_statistics()

    def _reduce(x, fn):
        x = x[~torch.isnan(x)]
        return float(fn(x)) if x.numel() else float('nan')

    valid = mem.valid
    drift = (mem.values.detach().double() - mem.written_values.double())[valid]
    out = dict(fill=float(valid.float().mean()),
               value_mean=_reduce(stats['value_mean'], torch.mean),
               value_min=_reduce(stats['value_mean'], torch.min),
               value_max=_reduce(stats['value_mean'], torch.max),
               drift_abs=float(drift.abs().mean()) if drift.numel() else float('nan'),
               drift=float(drift.mean()) if drift.numel() else float('nan'))
    if mem.num_classes <= per_class_max:
        for c, value in enumerate(stats['value_mean'].tolist()):
            out[f'value_c{c}'] = value
    return out


@HOOKS.register_module()
class IEMMemoryHook(Hook):
    """Flush the episodic memories of every ``IEMHead`` once per training step.

    After the optimizer step of iteration ``t`` this hook applies the memory step staged in
    ``IEMHead.loss`` (ageing, age reset of read slots, gathered writes), so that the writes
    never invalidate the gradient just computed, and zeros the optimizer state (Adam moments,
    momentum) of slots that appends overwrote: a new key must not inherit the moments of the
    key it evicted. It runs before ``CheckpointHook`` (priority ``ABOVE_NORMAL``), so saved
    checkpoints hold a fully applied memory and resume reproduces an uninterrupted run.
    Before training it logs each memory's size in bytes (with Adam's two extra copies when
    the memory parameters are in an Adam group).

    Without this hook ``IEMHead.loss`` still applies the staged step at the start of the
    next iteration, but overwritten slots keep their optimizer state.

    Every ``log_interval`` iterations it logs, per memory, the fill ratio and what the values
    hold (:meth:`EpisodicMemory.value_statistics`): ``<memory>_value_mean`` (over classes),
    ``_value_min`` / ``_value_max`` (smallest / largest class mean: values that stay
    head-biased show here), ``_drift_abs`` / ``_drift`` (mean absolute / signed move of the
    values by back-propagation since their last write: ~0 means the memory only stores
    write-time confidences) and, for at most ``per_class_max`` classes,
    ``_value_c<i>``; also one ``runner.logger`` line.

    Args:
        log_interval (int): log memory statistics every this many iterations (0: never).
            Defaults to 0.
        per_class_max (int): log each class's mean value when ``C`` is at most this.
            Defaults to 20.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, log_interval: int = 0, per_class_max: int = 20) -> None:
        self.log_interval = int(log_interval)
        self.per_class_max = int(per_class_max)

    @staticmethod
    def _heads(runner) -> List:
        from lt_plugins.models.heads.iem_head import IEMHead
        return [m for m in runner.model.modules() if isinstance(m, IEMHead)]

    def before_train(self, runner) -> None:
        heads = self._heads(runner)
        if not heads:
            runner.logger.warning('IEMMemoryHook: the model has no IEMHead; nothing to do.')
            return
        adam_params = set()
        for optimizer in _optimizers(runner):
            for group in optimizer.param_groups:
                if group.get('adam', False) or isinstance(optimizer, (torch.optim.Adam,
                                                                      torch.optim.AdamW)):
                    adam_params.update(id(p) for p in group['params'])
        for head in heads:
            for name, mem in head.memories():
                adam = ''
                if id(mem.keys) in adam_params:
                    adam = f', {mem.memory_bytes(2) / 2**20:.1f} MiB with Adam state'
                runner.logger.info(
                    f'IEMMemoryHook: {name} {mem.num_classes} classes x {mem.capacity} slots '
                    f'x {mem.dim} dims = {mem.memory_bytes() / 2**20:.1f} MiB{adam}; under '
                    'DDP its dense gradient is all-reduced every step.')

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        for head in self._heads(runner):
            head.flush_memories()
            for _, mem in head.memories():
                mask = mem.pop_overwritten()
                if mask is None or not bool(mask.any()):
                    continue
                for optimizer in _optimizers(runner):
                    reset_optimizer_slots(optimizer, mem.keys, mask)
                    reset_optimizer_slots(optimizer, mem.values, mask)
            if self.log_interval and self.every_n_train_iters(runner, self.log_interval):
                for name, mem in head.memories():
                    stats = memory_value_summary(mem, self.per_class_max)
                    for key, value in stats.items():
                        if value == value:  # not NaN
                            runner.message_hub.update_scalar(f'train/{name}_{key}', value)
                    runner.logger.info(f'{name}: ' + ', '.join(
                        f'{k}={v:.4f}' for k, v in stats.items() if not k.startswith('value_c')))


__all__ = ['IEMMemoryHook', 'memory_value_summary', 'reset_optimizer_slots']
