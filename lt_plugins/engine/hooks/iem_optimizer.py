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
"""
import math
from typing import Callable, Iterable, Optional, Tuple

import torch
from mmpretrain.registry import OPTIMIZERS
from torch.optim import Optimizer


@OPTIMIZERS.register_module()
class HybridSGDAdam(Optimizer):
    """SGD (torch.optim.SGD rule) for groups without ``adam=True``, Adam for the others.

    Both rules reproduce their torch counterparts (L2 ``weight_decay`` added to the gradient,
    Adam with bias correction, no AMSGrad). State per parameter: ``momentum_buffer`` (SGD)
    or ``step``, ``exp_avg``, ``exp_avg_sq`` (Adam), so ``state_dict()`` checkpoints it.

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
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 adam: bool = False) -> None:
        if lr < 0:
            raise ValueError(f'HybridSGDAdam: invalid lr={lr}.')
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError('HybridSGDAdam: nesterov needs momentum > 0 and dampening = 0.')
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, betas=tuple(betas),
                        eps=eps, adam=adam)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Optional[Callable] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group['params']:
                if param.grad is None:
                    continue
                grad = param.grad
                if group['weight_decay']:
                    grad = grad.add(param, alpha=group['weight_decay'])
                if group['adam']:
                    self._adam(param, grad, group)
                else:
                    self._sgd(param, grad, group)
        return loss

    def _sgd(self, param: torch.Tensor, grad: torch.Tensor, group: dict) -> None:
        momentum = group['momentum']
        if momentum:
            state = self.state[param]
            buf = state.get('momentum_buffer')
            if buf is None:
                buf = state['momentum_buffer'] = grad.detach().clone()
            else:
                buf.mul_(momentum).add_(grad, alpha=1 - group['dampening'])
            grad = grad.add(buf, alpha=momentum) if group['nesterov'] else buf
        param.add_(grad, alpha=-group['lr'])

    def _adam(self, param: torch.Tensor, grad: torch.Tensor, group: dict) -> None:
        state = self.state[param]
        if not state:
            state['step'] = torch.zeros((), dtype=torch.float32)
            state['exp_avg'] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state['exp_avg_sq'] = torch.zeros_like(param, memory_format=torch.preserve_format)
        beta1, beta2 = group['betas']
        state['step'] += 1
        step = float(state['step'])
        exp_avg, exp_avg_sq = state['exp_avg'], state['exp_avg_sq']
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
        bias_correction2_sqrt = math.sqrt(1 - beta2**step)
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(group['eps'])
        param.addcdiv_(exp_avg, denom, value=-group['lr'] / (1 - beta1**step))


__all__ = ['HybridSGDAdam']
