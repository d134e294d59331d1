"""Buffers sized by the class counts, which exist only once ``ClassCountsHook`` has run."""
from typing import Iterable

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
