"""Checkpoints that do not fit: a file that cannot be read names itself, and a checkpoint of
another model is refused by ``tools/test.py`` instead of being evaluated half-loaded."""
import os.path as osp
import pickle
import zipfile
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.logging import MMLogger

# what torch.load raises on a file cut short (zip archive without its central directory,
# a legacy pickle that ends early) or otherwise damaged; a refusal for safety
# (weights_only) and every other error pass unchanged
READ_ERRORS = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile)
DAMAGE_MARKERS = ('PytorchStreamReader', 'zip archive', 'central directory', 'truncated',
                  'Ran out of input', 'unexpected EOF', 'invalid load key', 'file read failed')
_MAX_LISTED = 10


def read_error_message(filename: str, err: BaseException) -> str:
    """The reason a checkpoint could not be read, with the file and its size on disk."""
    size = ''
    if isinstance(filename, str) and osp.isfile(osp.expanduser(filename)):
        size = f' ({osp.getsize(osp.expanduser(filename))} bytes on disk)'
    return (f"cannot read checkpoint '{filename}'{size}: {type(err).__name__}: {err}. A "
            'file cut short (an interrupted save or copy, a full disk) fails this way: check '
            'its size, copy it again or use another checkpoint (e.g. an earlier epoch_*.pth).')


def install_named_read_errors() -> None:
    """Make every mmengine checkpoint read (``load_from``, ``resume``, ``tools/test.py``,
    ``init_cfg=Pretrained``) name the file when it fails to parse.

    Wraps ``CheckpointLoader.load_checkpoint``, the one entry point in front of whichever
    loader is registered for the path's scheme (so the loading policy of
    ``lt_plugins.compat`` is untouched). Only errors that mark a damaged file are
    rewritten, keeping their type; a missing file keeps mmengine's own
    ``FileNotFoundError`` (which names it), a ``weights_only`` refusal stays as it is.
    Idempotent.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    if getattr(CheckpointLoader.load_checkpoint, '_lt_names_file', False):
        return
    original = CheckpointLoader.load_checkpoint.__func__

    def load_checkpoint(cls, filename, map_location=None, logger='current'):
        try:
            return original(cls, filename, map_location, logger)
        except FileNotFoundError:
            raise
        except READ_ERRORS as err:
            text = str(err)
            damaged = isinstance(err, (EOFError, zipfile.BadZipFile)) or any(
                marker in text for marker in DAMAGE_MARKERS)
            if not damaged or 'weights_only' in text or str(filename) in text:
                raise
            try:  # same exception type, so callers that catch it still do
                named = type(err)(read_error_message(filename, err))
            except Exception:  # an exception class with another constructor
                named = RuntimeError(read_error_message(filename, err))
            raise named from err

    load_checkpoint._lt_names_file = True
    CheckpointLoader.load_checkpoint = classmethod(load_checkpoint)


def _listed(keys: List[str]) -> str:
    shown = ', '.join(keys[:_MAX_LISTED])
    return shown + (f', ... ({len(keys) - _MAX_LISTED} more)' if len(keys) > _MAX_LISTED
                    else '')


def checkpoint_key_mismatch(model: nn.Module, filename: str) -> Dict[str, List[str]]:
    """Compare a checkpoint's ``state_dict`` with ``model`` as ``load_state_dict`` sees it.

    Returns ``dict(missing=[...], unexpected=[...], shape=[...])``. The comparison goes
    through the model's own ``load_state_dict`` (non-strict), so its load hooks count (a
    decoupled stage that re-initialises its head skips ``head.*`` of a stage-1 checkpoint,
    a buffer that grows to the stored size loads); tensors of another shape are listed under
    ``shape`` and left out of that load; keys a released checkpoint dropped on purpose
    (``meta['lt_dropped_training_state']``) are not missing. The
    weights are loaded into ``model``: ``tools/test.py`` loads the same file right after.
    """
    from mmengine.model import is_model_wrapper
    from mmengine.runner.checkpoint import CheckpointLoader
    if is_model_wrapper(model):
        model = model.module
    checkpoint = CheckpointLoader.load_checkpoint(filename, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise RuntimeError(f"checkpoint '{filename}' holds a {type(checkpoint).__name__}, not "
                           'a state dict or a dict with a `state_dict` entry.')
    state = {(k[len('module.'):] if k.startswith('module.') else k): v
             for k, v in state.items()}  # mmengine's default revise_keys
    own = model.state_dict()
    try:  # modules that size their buffers from the checkpoint (STG's smoother) load as is
        result, shape = model.load_state_dict(state, strict=False), []
    except RuntimeError as err:
        if 'size mismatch' not in str(err):
            raise
        shape = [k for k, v in state.items() if k in own and isinstance(v, torch.Tensor)
                 and v.shape != own[k].shape]
        result = model.load_state_dict({k: v for k, v in state.items() if k not in shape},
                                       strict=False)
    # a released checkpoint (tools/release_checkpoint.py) lists the training-only modules
    # whose state it dropped on purpose: their keys are not missing
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    dropped = tuple(p.rstrip('.') + '.' for p in
                    ((meta or {}).get('lt_dropped_training_state') or ()))
    missing = [k for k in result.missing_keys if not k.startswith(dropped)] if dropped \
        else result.missing_keys
    return dict(missing=sorted(set(missing) - set(shape)),
                unexpected=sorted(result.unexpected_keys),
                shape=[f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in shape])


def check_checkpoint_keys(model: nn.Module, filename: str, allow_mismatch: bool = False,
                          flag: str = '--allow-key-mismatch',
                          logger: Optional[MMLogger] = None) -> Dict[str, List[str]]:
    """Refuse (ValueError) a checkpoint whose keys or shapes differ from ``model``'s, unless
    ``allow_mismatch``: then log a warning. Returns the mismatch lists."""
    found = checkpoint_key_mismatch(model, filename)
    if not any(found.values()):
        return found
    parts = [f'{len(found[name])} {label} ({_listed(found[name])})'
             for name, label in (('missing', 'missing keys'), ('unexpected', 'unexpected keys'),
                                 ('shape', 'tensors of another shape')) if found[name]]
    message = (f"checkpoint '{filename}' does not fit the model of this config: "
               f'{"; ".join(parts)}. It was probably written by another model or method '
               '(e.g. an IEM checkpoint under a CE config): pass the config it was trained '
               'with')
    if not allow_mismatch:
        raise ValueError(message + f', or {flag} to evaluate anyway (missing weights keep '
                         'their initialisation).')
    (logger or MMLogger.get_current_instance()).warning(
        message + f'; evaluating anyway ({flag}).')
    return found
