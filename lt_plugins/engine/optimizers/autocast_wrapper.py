"""AutocastOptimWrapper: mixed precision by autocast alone (bfloat16 on CPU, no loss scale)."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose forward passes run under ``torch.autocast``.

    mmengine's ``AmpOptimWrapper`` (float16 with a dynamic loss scale) refuses the CPU; this
    wrapper runs the same autocast regions with a dtype that needs no loss scaling
    (bfloat16), so the mixed-precision path of a model -- low-precision features written
    into float32 memory banks, float32 losses -- can be exercised without a GPU. The
    benchmark uses it for ``--amp`` on CPU and ``AmpOptimWrapper`` on CUDA.

    Args:
        dtype (str): autocast dtype, ``'bfloat16'`` (default) or ``'float16'``.
        device_type (str): autocast device, ``'cpu'`` (default) or ``'cuda'``.
        **kwargs: arguments of ``OptimWrapper`` (``optimizer``, ``clip_grad`` ...).
    """

    def __init__(self, dtype: str = 'bfloat16', device_type: str = 'cpu', **kwargs) -> None:
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f'AutocastOptimWrapper: dtype={dtype!r}; use bfloat16 or float16.')
        if device_type not in ('cpu', 'cuda'):
            raise ValueError(f'AutocastOptimWrapper: device_type={device_type!r}; use cpu or '
                             'cuda.')
        super().__init__(**kwargs)
        self.dtype = getattr(torch, dtype)
        self.device_type = device_type

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast(self.device_type, dtype=self.dtype):
            yield
