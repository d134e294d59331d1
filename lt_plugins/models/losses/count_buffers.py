"""Class counts in modules: the one way a loss or part receives ``n_c`` and turns it into a
prior ``pi_c = n_c / sum_j n_j`` or a log-prior.

:class:`ClassCountsModule` is the base of every count-aware loss and inference part
(``LDAMLoss``, ``BalancedSoftmaxLoss``, ``LogitAdjustedLoss``, ``ClassBalancedLoss``,
``PostHocLogitAdjustment``): the counts arrive from ``ClassCountsHook`` through
:meth:`~ClassCountsModule.set_class_counts` (an explicit ``class_counts`` argument wins), live
in a ``class_counts`` buffer (so they travel with the checkpoint), and every buffer sized by
them takes the checkpoint's size while still empty.
"""
from typing import Iterable, Optional, Sequence

import torch
import torch.nn as nn


def size_empty_buffers_from(module: nn.Module, state_dict: dict, prefix: str,
                            names: Iterable[str]) -> None:
    """Before ``module`` loads ``state_dict``: give each still-empty buffer in ``names`` the
    stored shape, so that a checkpoint (``tools/test.py``, ``load_from``) loads into a module
    built before the class counts arrived. Buffers that already hold values keep their shape,
    and a stored tensor of another shape is then reported by ``load_state_dict`` as usual."""
    for name in names:
        stored = state_dict.get(prefix + name)
        own = getattr(module, name)
        if stored is not None and own.numel() == 0 and stored.shape != own.shape:
            setattr(module, name, own.new_zeros(stored.shape))


def checked_class_counts(counts, who: str, why: str = '') -> torch.Tensor:
    """``counts`` as a ``(C,)`` int64 tensor; refuses an empty list and classes without
    training samples (``why`` says what would become infinite)."""
    counts = torch.as_tensor(counts, dtype=torch.long).reshape(-1)
    if counts.numel() == 0:
        raise ValueError(f'{who}: empty class counts.')
    empty = (counts <= 0).nonzero(as_tuple=True)[0]
    if empty.numel():
        raise ValueError(
            f'{who}: classes {empty.tolist()[:10]} have no training samples'
            f'{", so " + why if why else ""}. Remove these classes from the training set or '
            'pass `class_counts=[...]` with counts >= 1.')
    return counts


def class_prior(counts, check: bool = True) -> torch.Tensor:
    """Training prior ``pi_c = n_c / sum_j n_j`` as ``(C,)`` float64 on the counts' device.

    ``check=False`` skips the test for empty counts (it reads a value, a device sync on GPU):
    for counts a :class:`ClassCountsModule` has already checked when they arrived.
    """
    counts = torch.as_tensor(counts).reshape(-1).to(torch.float64)
    if check and (counts.numel() == 0 or float(counts.sum()) <= 0):
        raise ValueError('class_prior: the class counts are empty or sum to 0.')
    return counts / counts.sum()


def log_class_prior(counts, check: bool = True) -> torch.Tensor:
    """``log pi_c`` as ``(C,)`` float32, computed in float64; every ``n_c`` must be >= 1
    (checked unless ``check=False``, see :func:`class_prior`)."""
    if check:
        counts = checked_class_counts(counts, 'log_class_prior', 'their log-prior is -inf')
    return class_prior(counts, check=False).log().float()


class ClassCountsModule(nn.Module):
    """Base of the modules that need the training class counts ``n_c``.

    Subclasses list the buffers sized by the counts in ``COUNT_BUFFERS`` (``class_counts``
    first), register nothing themselves for them, override :meth:`_derive` to fill the other
    buffers from new counts, and call :meth:`_init_counts` last in their ``__init__``.
    ``MISSING_OK``: a checkpoint without the ``class_counts`` key (one written by a model
    without this module, e.g. a CE model read post hoc) loads without a missing key; the
    counts then come from ``ClassCountsHook`` as usual.
    """

    COUNT_BUFFERS = ('class_counts', )
    MISSING_OK = False
    #: what an empty class makes infinite (for the error message)
    ZERO_COUNT_REASON = ''

    def __init__(self) -> None:
        super().__init__()
        for name in self.COUNT_BUFFERS:
            dtype = torch.long if name == 'class_counts' else torch.float32
            self.register_buffer(name, torch.zeros(0, dtype=dtype))
        self._explicit_counts = False

    def _init_counts(self, class_counts: Optional[Sequence[int]]) -> None:
        self._explicit_counts = class_counts is not None
        if class_counts is not None:
            self._write_counts(class_counts)

    def _derive(self, counts: torch.Tensor) -> None:
        """Fill the buffers derived from ``counts`` (``(C,)`` int64, all >= 1)."""

    def _write_counts(self, counts) -> None:
        counts = checked_class_counts(counts, type(self).__name__, self.ZERO_COUNT_REASON)
        self.class_counts = counts.to(self.class_counts.device)
        self._derive(counts)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        size_empty_buffers_from(self, state_dict, prefix, self.COUNT_BUFFERS)
        if self.MISSING_OK and prefix + 'class_counts' not in state_dict:
            for name in self.COUNT_BUFFERS:   # keep what the module holds (maybe nothing yet)
                state_dict[prefix + name] = getattr(self, name).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_class_counts(self, counts) -> None:
        """Receive ``n_c`` (``ClassCountsHook``); explicit ``class_counts`` win."""
        if self._explicit_counts:
            n = torch.as_tensor(counts).numel()
            if n != self.class_counts.numel():
                raise ValueError(f'{type(self).__name__}: class_counts has '
                                 f'{self.class_counts.numel()} classes but the training set '
                                 f'has {n}.')
            return
        self._write_counts(counts)

    def require_counts(self, num_logits: int) -> torch.Tensor:
        """The ``class_counts`` buffer, checked against ``num_logits`` classes."""
        if self.class_counts.numel() == 0:
            raise RuntimeError(
                f'{type(self).__name__}: missing class counts. Add '
                "dict(type='ClassCountsHook') to `custom_hooks` (configs/_base_/"
                'default_runtime.py has it) or set `class_counts=[...]` in its config.')
        if num_logits != self.class_counts.numel():
            raise ValueError(f'{type(self).__name__}: {num_logits} logits per sample but '
                             f'{self.class_counts.numel()} class counts.')
        return self.class_counts
