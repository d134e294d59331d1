"""MaxNorm constraint on classifier rows (weight balancing, Alshammari et al., CVPR 2022)."""
from typing import Dict, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

CHECKPOINT_KEY = 'lt_max_norm_threshold'


@torch.no_grad()
def max_norm_project_(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """Project every row of ``weight`` onto the L2 ball of radius ``threshold``, in place.

    A row ``w_c`` with ``||w_c|| > threshold`` becomes ``threshold * w_c / ||w_c||``; the
    others are left exactly as they are (projected gradient descent of the MaxNorm
    constraint). Returns the ``(C,)`` row norms before the projection.
    """
    if threshold <= 0:
        raise ValueError(f'max_norm_project_: threshold must be > 0, got {threshold}.')
    rows = weight.reshape(weight.shape[0], -1)
    norms = rows.norm(dim=1)
    over = norms > threshold
    if bool(over.any()):
        scale = torch.where(over, threshold / norms.clamp_min(1e-12), torch.ones_like(norms))
        weight.mul_(scale.view(-1, *([1] * (weight.dim() - 1))).to(weight.dtype))
    return norms


@HOOKS.register_module()
class MaxNormHook(Hook):
    """Keep each classifier row inside a norm ball: ``||w_c||_2 <= delta`` after every step.

    Weight balancing's second stage (Alshammari et al. 2022) fine-tunes the classifier with a
    class-balanced loss, weight decay and the MaxNorm constraint, solved by projected
    gradient descent: after each optimizer step every row of the weight named ``param`` whose
    norm exceeds ``delta`` is scaled back onto the ball (:func:`max_norm_project_`); the bias
    is left free, as in the reference code.

    The radius is ``max_norm`` or, with ``relative``, ``min_c ||w_c|| + relative * (max_c
    ||w_c|| - min_c ||w_c||)`` of the rows when training starts (the reference
    implementation's per-layer threshold, 0.1 there), i.e. of the loaded stage-1 classifier.
    The radius is written into each checkpoint's meta (``lt_max_norm_threshold``) and read
    back from a checkpoint that has it, so a resumed run keeps its radius.

    Logged through the message hub every iteration: ``train/maxnorm_max``,
    ``train/maxnorm_min``, ``train/maxnorm_projected`` (share of rows that were projected in
    this step) and, for at most ``per_class_max`` classes, each row's norm
    ``train/maxnorm_c<i>``; every ``interval`` iterations the logger prints all per-class
    norms.

    Args:
        param (str): the constrained weight, a parameter name of the model (without DDP's
            ``module.``). Defaults to ``'head.fc.weight'`` (``LinearClsHead``; a
            ``ComposedClsHead`` classifier: ``'head.classifier.fc.weight'``).
        max_norm (float, optional): the radius ``delta``.
        relative (float, optional): the radius relative to the starting rows (see above);
            give exactly one of ``max_norm`` and ``relative``.
        interval (int): iterations between two logged lists of per-class norms. Defaults
            to 50.
        per_class_max (int): log each row's norm as a scalar when there are at most this many
            classes. Defaults to 20.
    """

    priority = 'NORMAL'

    def __init__(self, param: str = 'head.fc.weight', max_norm: Optional[float] = None,
                 relative: Optional[float] = None, interval: int = 50,
                 per_class_max: int = 20) -> None:
        if (max_norm is None) == (relative is None):
            raise ValueError('MaxNormHook: give exactly one of `max_norm` and `relative` '
                             f'(got {max_norm}, {relative}).')
        if max_norm is not None and max_norm <= 0:
            raise ValueError(f'MaxNormHook: max_norm must be > 0, got {max_norm}.')
        if relative is not None and relative < 0:
            raise ValueError(f'MaxNormHook: relative must be >= 0, got {relative}.')
        if interval < 1:
            raise ValueError(f'MaxNormHook: interval must be >= 1, got {interval}.')
        self.param = param
        self.max_norm = None if max_norm is None else float(max_norm)
        self.relative = None if relative is None else float(relative)
        self.interval = int(interval)
        self.per_class_max = int(per_class_max)
        self.threshold: Optional[float] = self.max_norm

    def _weight(self, runner) -> torch.nn.Parameter:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        params: Dict[str, torch.nn.Parameter] = dict(model.named_parameters())
        if self.param not in params:
            near = [n for n in params if n.startswith('head.') and n.endswith('weight')]
            raise ValueError(f'MaxNormHook: the model has no parameter {self.param!r}; set '
                             f'`param` to the classifier weight, one of {near[:8]}.')
        weight = params[self.param]
        if weight.dim() < 2:
            raise ValueError(f'MaxNormHook: {self.param!r} has shape {tuple(weight.shape)}; '
                             'it must be a (C, d) weight with one row per class.')
        return weight

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        stored = (checkpoint.get('meta') or {}).get(CHECKPOINT_KEY, {}).get(self.param)
        if stored is not None and self.max_norm is None:
            self.threshold = float(stored)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.threshold is not None:
            meta = checkpoint.setdefault('meta', {})
            meta.setdefault(CHECKPOINT_KEY, {})[self.param] = self.threshold

    def before_train(self, runner) -> None:
        weight = self._weight(runner)
        if self.threshold is None:
            with torch.no_grad():
                norms = weight.detach().reshape(weight.shape[0], -1).norm(dim=1).float()
            low, high = float(norms.min()), float(norms.max())
            self.threshold = low + self.relative * (high - low)
            if self.threshold <= 0:
                raise ValueError(f'MaxNormHook: the rows of {self.param!r} have norms in '
                                 f'[{low}, {high}], which gives a radius {self.threshold}; '
                                 'load the stage-1 checkpoint (`load_from`) or use `max_norm`.')
        runner.logger.info(f'MaxNormHook: rows of {self.param} kept within norm '
                           f'{self.threshold:.6g}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        weight = self._weight(runner)
        before = max_norm_project_(weight.data, self.threshold)
        after = torch.clamp(before, max=self.threshold)
        hub = runner.message_hub
        hub.update_scalar('train/maxnorm_max', float(after.max()))
        hub.update_scalar('train/maxnorm_min', float(after.min()))
        hub.update_scalar('train/maxnorm_projected', float((before > self.threshold).float()
                                                           .mean()))
        if after.numel() <= self.per_class_max:
            for c, value in enumerate(after.tolist()):
                hub.update_scalar(f'train/maxnorm_c{c}', value)
        if self.every_n_train_iters(runner, self.interval):
            runner.logger.info(f'MaxNormHook: per-class norms of {self.param} (radius '
                               f'{self.threshold:.4g}): '
                               + ' '.join(f'{v:.4f}' for v in after.tolist()))
