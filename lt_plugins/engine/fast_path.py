"""The fast training path: bfloat16 autocast, channels-last and ``torch.compile``.

A config opts in with a top-level key (every config under ``configs/`` does, through
``configs/_base_/default_runtime.py``)::

    fast_path = dict(amp='auto', channels_last='auto', compile=False)

and ``import lt_plugins`` makes every mmengine ``Runner`` apply it while it wraps the model
(a config without the key is left exactly as it is):

- ``amp``: ``'auto'`` turns bfloat16 autocast on for training (``AutocastOptimWrapper``)
  and for validation / testing (``ValLoop`` / ``TestLoop`` with ``fp16=True``) where the
  processor computes bfloat16 natively (``avx512_bf16`` or ``amx_bf16``); elsewhere
  emulated bfloat16 is several times *slower* than float32, so training stays in float32 and
  one log line says why. ``True`` asks for it explicitly and is refused on a CPU without
  native bfloat16; ``False`` (``tools/train.py --no-amp``) keeps float32. On CUDA,
  ``'auto'`` keeps the config's optimizer wrapper and ``True`` selects mmengine's
  ``AmpOptimWrapper`` (float16, dynamic loss scale), as ``--amp`` always did.
- ``channels_last``: ``'auto'`` stores the backbone's convolution weights and its input
  batches in the channels-last (NHWC) layout on CPU, and on CUDA where AMP is on; ``True`` /
  ``False`` force it. Only the backbone changes layout: memory banks, prototypes, class
  statistics and losses are untouched (they stay float32 under autocast, too).
- ``compile``: ``False`` (default), ``True`` or a dict of ``torch.compile`` arguments.
  Compiles the backbone alone (``nn.Module.compile``, so state-dict keys do not change):
  every memory, generator and loss path, whose shapes and state change from step to step,
  stays eager.
"""
import functools
from dataclasses import dataclass, field
from typing import Any, List, Optional, Union

import torch
from torch import nn

FAST_PATH_KEYS = ('amp', 'channels_last', 'compile')
_CPUINFO = '/proc/cpuinfo'
NATIVE_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> frozenset:
    try:
        with open(_CPUINFO) as f:
            for line in f:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bfloat16_support() -> Optional[str]:
    """The CPU flag that gives native bfloat16 arithmetic (``'amx_bf16'`` or
    ``'avx512_bf16'``), or ``None``. Read from ``/proc/cpuinfo`` (Linux); where that file
    does not exist the answer is ``None``, so ``'auto'`` keeps float32 there."""
    flags = _cpu_flags()
    for flag in NATIVE_BF16_FLAGS[::-1]:
        if flag in flags:
            return flag
    return None


@dataclass
class FastPath:
    """What the fast path does for one run, and why (``notes`` are logged once)."""
    device: str
    amp: bool
    channels_last: bool
    compile: Optional[dict]
    notes: List[str] = field(default_factory=list)

    def summary(self) -> str:
        amp = ('bfloat16 autocast' if self.device == 'cpu' else 'AMP') + \
            (' on' if self.amp else ' off')
        return (f'fast path on {self.device}: {amp}, channels-last '
                f'{"on" if self.channels_last else "off"}, torch.compile '
                f'{"on" if self.compile is not None else "off"}')


def _check_choice(key: str, value: Any, allowed: tuple) -> None:
    # booleans by identity: 1.0 == True would slip through `in`
    if not any(value is a if isinstance(a, bool) else value == a for a in allowed):
        raise ValueError(f'fast_path.{key}={value!r}: use one of '
                         f'{", ".join(repr(a) for a in allowed)}.')


def resolve_fast_path(cfg: Optional[dict], device: str,
                      config_amp: bool = False) -> FastPath:
    """Decide the fast path of a run from the config's ``fast_path`` dict.

    Args:
        cfg: the ``fast_path`` config (``None``: nothing changes).
        device: ``'cpu'`` or ``'cuda'``.
        config_amp: whether the config's optimizer wrapper already runs mixed precision
            (``AmpOptimWrapper`` / ``AutocastOptimWrapper``).
    """
    if cfg is None:
        return FastPath(device, config_amp, False, None)
    if not isinstance(cfg, dict):
        raise TypeError(f'fast_path={cfg!r}: use a dict with keys {FAST_PATH_KEYS} '
                        '(or None to leave the config as it is).')
    unknown = sorted(set(cfg) - set(FAST_PATH_KEYS))
    if unknown:
        raise KeyError(f'fast_path has unknown keys {unknown}; allowed: {FAST_PATH_KEYS}.')
    amp = cfg.get('amp', 'auto')
    channels_last = cfg.get('channels_last', 'auto')
    compile_cfg = cfg.get('compile', False)
    _check_choice('amp', amp, ('auto', True, False))
    _check_choice('channels_last', channels_last, ('auto', True, False))
    if not (isinstance(compile_cfg, (bool, dict))):
        raise TypeError(f'fast_path.compile={compile_cfg!r}: use False, True or a dict of '
                        'torch.compile arguments (e.g. dict(mode="max-autotune")).')
    notes = []
    if device == 'cpu':
        flag = cpu_bfloat16_support()
        if amp is True and flag is None:
            raise RuntimeError(
                'fast_path.amp=True (or --amp) asks for bfloat16 autocast, but this CPU has '
                f'no native bfloat16 instructions (none of {NATIVE_BF16_FLAGS} in '
                f'{_CPUINFO}); emulated bfloat16 trains several times slower than float32. '
                "Use fast_path.amp='auto' (bfloat16 where supported) or False / --no-amp.")
        if amp == 'auto':
            amp = flag is not None
            if amp:
                notes.append(f'bfloat16 autocast on: the CPU computes bfloat16 natively '
                             f'({flag}); set fast_path.amp=False or --no-amp for float32')
            else:
                notes.append('bfloat16 autocast off: this CPU has no native bfloat16 '
                             f'({" / ".join(NATIVE_BF16_FLAGS)} absent), where it is slower '
                             'than float32; training runs in float32')
        amp = bool(amp) or config_amp
        if channels_last == 'auto':
            channels_last = True
    else:
        amp = config_amp if amp == 'auto' else bool(amp) or config_amp
        if channels_last == 'auto':
            channels_last = amp
    compile_kwargs = None
    if compile_cfg:
        compile_kwargs = {} if compile_cfg is True else dict(compile_cfg)
    return FastPath(device, bool(amp), bool(channels_last), compile_kwargs, notes)


_MIXED_WRAPPERS = ('AmpOptimWrapper', 'AutocastOptimWrapper')


def _type_name(cfg: Any) -> Optional[str]:
    kind = cfg.get('type') if isinstance(cfg, dict) else None
    return kind if kind is None or isinstance(kind, str) else kind.__name__


def _mixed_precision_in(optim_wrapper: Any) -> bool:
    return isinstance(optim_wrapper, dict) and _type_name(optim_wrapper) in _MIXED_WRAPPERS


def _enable_amp(runner, fast: FastPath) -> None:
    """bfloat16 autocast (CPU) / float16 AMP (CUDA) for training and evaluation loops."""
    wrapper = runner.optim_wrapper
    if isinstance(wrapper, dict) and _type_name(wrapper) in (None, 'OptimWrapper'):
        wrapper = type(wrapper)(wrapper)
        if fast.device == 'cpu':
            wrapper.update(type='AutocastOptimWrapper', dtype='bfloat16', device_type='cpu')
        else:
            wrapper.update(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
        runner.optim_wrapper = wrapper
    elif isinstance(wrapper, dict) and not _mixed_precision_in(wrapper):
        fast.notes.append(f'optim_wrapper type {_type_name(wrapper)!r} kept as configured '
                          '(autocast is added to OptimWrapper only)')
    for attr in ('_val_loop', '_test_loop'):
        loop = getattr(runner, attr, None)
        if isinstance(loop, dict) and _type_name(loop) in (None, 'ValLoop', 'TestLoop'):
            loop = type(loop)(loop)
            loop.setdefault('fp16', True)
            setattr(runner, attr, loop)


def _to_channels_last(inputs: Any) -> Any:
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def _channels_last_pre_hook(module: nn.Module, args: tuple) -> tuple:
    return tuple(_to_channels_last(a) for a in args)


def convert_to_channels_last(model: nn.Module) -> int:
    """Store every ``Conv2d`` weight of ``model.backbone`` (or ``model`` itself when it has
    no backbone) channels-last and give the backbone its inputs in that layout. Returns the
    number of convolutions converted. Parameters keep their identity (only ``.data``
    changes), so an optimizer or DDP built on them is unaffected."""
    target = getattr(model, 'backbone', None)
    target = target if isinstance(target, nn.Module) else model
    count = 0
    for module in target.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(
                memory_format=torch.channels_last)
            count += 1
    if count and not getattr(target, '_lt_channels_last_hook', False):
        target.register_forward_pre_hook(_channels_last_pre_hook)
        target._lt_channels_last_hook = True
    return count


def compile_backbone(model: nn.Module, kwargs: dict) -> str:
    """Compile ``model.backbone`` in place (keys unchanged); returns what was compiled."""
    target = getattr(model, 'backbone', None)
    if not isinstance(target, nn.Module):
        raise ValueError('fast_path.compile needs a model with a `backbone` module; this '
                         f'{type(model).__name__} has none. Set fast_path.compile=False.')
    target.compile(**kwargs)
    return f'{type(model).__name__}.backbone'


def _runner_device() -> str:
    from mmengine.device import get_device
    return 'cuda' if get_device() == 'cuda' else 'cpu'


def apply_fast_path(runner, model: nn.Module) -> FastPath:
    """Apply the config's ``fast_path`` to a Runner whose model is about to be wrapped."""
    cfg = runner.cfg.get('fast_path', None) if runner.cfg is not None else None
    fast = resolve_fast_path(cfg, _runner_device(), _mixed_precision_in(runner.optim_wrapper))
    runner.fast_path = fast
    if cfg is None:
        return fast
    if fast.amp:
        _enable_amp(runner, fast)
    if fast.channels_last:
        convert_to_channels_last(model)
    if fast.compile is not None:
        fast.notes.append(f'compiled {compile_backbone(model, fast.compile)}')
    runner.logger.info(fast.summary() + ''.join(f'; {n}' for n in fast.notes))
    return fast


def install_fast_path() -> None:
    """Make ``Runner.wrap_model`` apply the config's ``fast_path`` first (once)."""
    from mmengine.runner import Runner
    original = Runner.wrap_model
    if getattr(original, '_lt_plugins_fast_path', False):
        return

    @functools.wraps(original)
    def wrap_model(self, model_wrapper_cfg, model):
        apply_fast_path(self, model)
        return original(self, model_wrapper_cfg, model)

    wrap_model._lt_plugins_fast_path = True
    Runner.wrap_model = wrap_model


def fast_path_from_flags(amp: Optional[bool] = None, channels_last: Optional[bool] = None,
                         compile: Union[bool, dict, None] = None,
                         base: Optional[dict] = None) -> dict:
    """The ``fast_path`` dict for command-line flags (``None``: keep ``base``'s value)."""
    out = dict(amp='auto', channels_last='auto', compile=False)
    out.update(base or {})
    for key, value in (('amp', amp), ('channels_last', channels_last), ('compile', compile)):
        if value is not None:
            out[key] = value
    return out

