"""One optimizer for IEM: SGD for the network, Adam for the episodic memories.

IEM (Zhu & Yang, CVPR 2020, Sec. 4.2) trains the backbone with SGD (momentum 0.9) and the
memory keys and values with Adam at lr 1e-5. MMPretrain's ``ImageClassifier.train_step``
drives one ``OptimWrapper`` (an ``OptimWrapperDict`` has no ``update_params``), so the
idiomatic way is a single optimizer whose parameter groups choose their update rule, with
the groups made by mmengine's ``paramwise_cfg.custom_keys`` (the constructor copies every
key of a custom_keys entry into the parameter group)::

    optim_wrapper = dict(
        optimizer=dict(type='HybridSGDAdam', lr=0.1, momentum=0.9, weight_decay=5e-4),
        paramwise_cfg=dict(custom_keys={
            'head.global_memory': dict(adam=True, lr_mult=1e-4, decay_mult=0.0),
            'head.local_memory': dict(adam=True, lr_mult=1e-4, decay_mult=0.0)}))

``lr_mult`` is the memory lr over the base lr (1e-5 / 0.1). Parameter schedulers scale every
group, the memory's too; its lr stays ``lr_mult`` times the backbone's.

mmengine's parameter schedulers write ``lr`` into every parameter group and have no way to
skip one. A group with ``fixed_lr=<value>`` (a custom_keys entry such as
``dict(adam=True, fixed_lr=1e-5, decay_mult=0.0)``) is therefore updated with that value,
whatever the schedulers wrote into its ``lr``: the paper's memory lr held constant while
warm-up and cosine drive the network's. The group's ``lr`` (what the schedulers and the logs
see) is then not the lr used.
"""
from typing import Callable, Iterable, List, Optional, Tuple

import torch
from mmpretrain.registry import OPTIMIZERS
from torch.optim import Optimizer
from torch.optim.adam import adam
from torch.optim.sgd import sgd


@OPTIMIZERS.register_module()
class HybridSGDAdam(Optimizer):
    """SGD (torch.optim.SGD rule) for groups without ``adam=True``, Adam for the others.

    Both rules call torch's own functional kernels (``torch.optim.sgd.sgd``,
    ``torch.optim.adam.adam``; L2 ``weight_decay``, Adam with bias correction, no AMSGrad), so
    they match ``torch.optim.SGD`` / ``Adam``; Adam uses the fused kernel where it can. State
    per parameter: ``momentum_buffer`` (SGD) or ``step``, ``exp_avg``, ``exp_avg_sq`` (Adam),
    so ``state_dict()`` checkpoints it.

    Args:
        params: parameters or groups; a group with ``adam=True`` uses Adam.
        lr (float): learning rate.
        momentum (float): SGD momentum. Defaults to 0.
        dampening (float): SGD dampening. Defaults to 0.
        weight_decay (float): L2 penalty. Defaults to 0.
        nesterov (bool): SGD Nesterov momentum. Defaults to False.
        betas (tuple): Adam betas. Defaults to (0.9, 0.999).
        eps (float): Adam epsilon. Defaults to 1e-8.
        adam (bool): default rule of groups that do not say. Defaults to False.
        fixed_lr (float, optional): default constant lr of groups that do not say; a group
            whose ``fixed_lr`` is not None is updated with it instead of its (scheduled)
            ``lr``. Defaults to None (every group follows its ``lr``).
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 adam: bool = False, fixed_lr: Optional[float] = None) -> None:
        if lr < 0:
            raise ValueError(f'HybridSGDAdam: invalid lr={lr}.')
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError('HybridSGDAdam: nesterov needs momentum > 0 and dampening = 0.')
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, betas=tuple(betas),
                        eps=eps, adam=adam, fixed_lr=fixed_lr)
        super().__init__(params, defaults)
        for group in self.param_groups:
            value = group['fixed_lr']
            if value is not None and (isinstance(value, bool) or
                                      not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f'HybridSGDAdam: fixed_lr={value!r} of a parameter group must '
                                 'be None or a non-negative number (the constant lr of that '
                                 'group, e.g. 1e-5 for the IEM memories).')

    @staticmethod
    def group_lr(group: dict) -> float:
        """The lr a group is updated with: its ``fixed_lr`` if set, else its ``lr``."""
        fixed = group.get('fixed_lr')
        return group['lr'] if fixed is None else float(fixed)

    @torch.no_grad()
    def step(self, closure: Optional[Callable] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group['params'] if p.grad is not None]
            if not params:
                continue
            if group['adam']:
                self._adam(group, params)
            else:
                self._sgd(group, params)
        return loss

    def _sgd(self, group: dict, params: List[torch.Tensor]) -> None:
        """torch's own SGD kernel (foreach where available) on one group."""
        buffers = [self.state[p].get('momentum_buffer') for p in params]
        sgd(params, [p.grad for p in params], buffers, weight_decay=group['weight_decay'],
            momentum=group['momentum'], lr=self.group_lr(group), dampening=group['dampening'],
            nesterov=group['nesterov'], maximize=False)
        if group['momentum']:
            for param, buf in zip(params, buffers):
                self.state[param]['momentum_buffer'] = buf

    def _adam(self, group: dict, params: List[torch.Tensor]) -> None:
        """torch's own Adam kernel on one group; the fused one on CPU / CUDA float tensors
        (one pass over the bank instead of seven: the memories are the largest tensors)."""
        for param in params:
            state = self.state[param]
            if not state:
                state['step'] = torch.zeros((), dtype=torch.float32, device=param.device)
                state['exp_avg'] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state['exp_avg_sq'] = torch.zeros_like(param,
                                                       memory_format=torch.preserve_format)
        states = [self.state[p] for p in params]
        fused = all(p.device.type in ('cpu', 'cuda') and p.is_floating_point()
                    and s['step'].device == p.device for p, s in zip(params, states))
        beta1, beta2 = group['betas']
        adam(params, [p.grad for p in params], [s['exp_avg'] for s in states],
             [s['exp_avg_sq'] for s in states], [], [s['step'] for s in states],
             foreach=False, fused=fused, amsgrad=False, beta1=beta1, beta2=beta2,
             lr=self.group_lr(group), weight_decay=group['weight_decay'], eps=group['eps'],
             maximize=False)


__all__ = ['HybridSGDAdam']
