"""Fixes for known traps of the supported stack, applied on ``import lt_plugins``.

Each fix is scoped to the one place that breaks, so a user who keeps MMPretrain's own
``tools/train.py`` / ``dist_train.sh`` and only adds ``custom_imports`` gets them too
(``Config.fromfile`` imports custom modules before the Runner is built):

1. **Checkpoint loading runs no code.** mmengine's local-file checkpoint scheme is
   re-registered with a loader that calls ``torch.load(..., weights_only=True)`` with an
   allow-list of exactly the non-tensor types mmengine, MMPretrain and this package put into
   checkpoints (``checkpoint_allowed_globals()``: the message hub's ``HistoryBuffer`` and its
   statistic methods, numpy arrays, dtypes and scalars), so ``--resume``, ``load_from`` and
   ``tools/test.py`` work under torch >= 2.6 without unpickling arbitrary objects. A file
   that needs any other type is refused with an error naming it. Opt-out for a file you
   trust: ``LT_PLUGINS_TRUSTED_CHECKPOINTS=1`` (``weights_only=False``, off by default).
   ``.safetensors`` files (``tools/release_checkpoint.py``) load through ``safetensors``.
   Every remote or named scheme mmengine registers (``http(s)://``, ``torchvision://``,
   ``open-mmlab://``, ``mmcls://``, ``pavi://``, ``s3://`` ...) is re-registered too
   (:mod:`lt_plugins.engine.remote_checkpoints`): the file is fetched as before and read by
   the same loader; a refused download is deleted from the cache.
   ``torch.load`` itself is left unchanged.
2. **DDP on CPU-only machines.** mmengine 0.10 calls ``torch.cuda.set_device`` in its
   PyTorch launcher and passes ``device_ids`` to DDP. Without CUDA we initialise the process
   group with gloo (when the config asks for nccl, the default) and drop ``device_ids``
   for CPU modules. With CUDA nothing changes. The Runner's environment log names the
   backend actually in use (the logged config still shows what the config asked for).
3. **``num_workers=0``.** MMPretrain's ``tools/train.py`` sets ``persistent_workers=True``
   on every dataloader, which PyTorch rejects without workers; Runner's dataloader
   builder now drops ``persistent_workers`` when ``num_workers == 0``.
4. **numpy >= 2.4 removed ``np.in1d``**, still called by MMPretrain 1.2's retrieval
   metrics; that module alone sees ``np.isin`` under the old name.
5. **Class counts everywhere**: every Runner gets a ``ClassCountsHook`` (unless the config
   already lists one), so heads, memory banks and ``ShotAccuracy`` receive the training
   class counts and checkpoints carry them, with nothing but ``custom_imports`` added.
6. **Pretrained weights offline.** ``TIMMBackbone(pretrained=True)`` without network access
   makes timm's hub client retry for about a minute and end in a cryptic error. When the
   weights are neither a local file nor in the local hub cache, and the hub cannot be
   reached within 3 s, we raise at once with the ways to load a local weight file.
7. **Version checks**: the installed mmcv (full or lite) must satisfy MMPretrain 1.2's
   ``2.0 <= mmcv < 2.4``; ``pkg_resources`` must exist (setuptools < 82) for
   ``_base_ = 'mmpretrain::...'``. Failures raise with the command that fixes them.
8. **Mid-epoch resume**: a ``train_cfg = dict(by_epoch=True, ...)`` builds
   :class:`~lt_plugins.engine.loops.MidEpochResumeTrainLoop` (mmengine's epoch loop that,
   resumed from an iteration checkpoint inside an epoch, skips the batches already trained
   instead of replaying the epoch). ``train_cfg = dict(type='EpochBasedTrainLoop', ...)``
   keeps mmengine's loop.
"""
import functools
import importlib.util
import json
import logging
import os
import os.path as osp
import pickle
import re
import types
import warnings
from typing import Any, Optional

import torch

# mmcv-lite has no compiled ops; MMPretrain's import of mmcv's transformer bricks warns
# about one it never uses here.
warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')

_APPLIED = False


# -- 7. version checks ---------------------------------------------------------
def _version_tuple(version: str) -> tuple:
    parts = []
    for piece in version.split('+')[0].split('.')[:3]:
        digits = ''.join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def check_versions() -> None:
    """Refuse an mmcv outside MMPretrain 1.2's range and a setuptools without pkg_resources."""
    import mmcv
    version = _version_tuple(mmcv.__version__)
    if not (2, 0, 0) <= version < (2, 4, 0):
        raise ImportError(
            f'lt_plugins needs mmcv (or mmcv-lite) >= 2.0, < 2.4 for MMPretrain 1.2, '
            f'found mmcv {mmcv.__version__}. Fix: pip install "mmcv-lite>=2.0,<2.4".')
    if importlib.util.find_spec('pkg_resources') is None:
        raise ImportError(
            'mmengine 0.10 needs pkg_resources to resolve `_base_ = "mmpretrain::..."`, '
            'which setuptools >= 82 no longer ships. Fix: pip install "setuptools<81".')


# -- 1. checkpoint loading: weights only, with an allow-list ---------------------
TRUSTED_CHECKPOINTS_ENV = 'LT_PLUGINS_TRUSTED_CHECKPOINTS'
SAFETENSORS_META_KEY = 'lt_plugins_meta'

# The statistic methods mmengine's HistoryBuffer registers by default; the message hub
# pickles them as ``getattr(HistoryBuffer, name)``.
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs a type outside :func:`checkpoint_allowed_globals` to be unpickled."""


def _history_buffer_statistic(owner: Any, name: str) -> Any:
    """Stands in for ``builtins.getattr`` while a checkpoint is unpickled: resolves only
    ``HistoryBuffer.<min|max|current|mean>``, the one use of ``getattr`` in checkpoints."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise UntrustedCheckpointError(
        f'the checkpoint calls getattr({owner!r}, {name!r}); only '
        f'getattr(HistoryBuffer, {"|".join(_HISTORY_BUFFER_STATISTICS)}) is allowed. '
        f'Set {TRUSTED_CHECKPOINTS_ENV}=1 only if you trust the file.')


def checkpoint_allowed_globals() -> dict:
    """``{pickled name: object}``: every global a checkpoint of mmengine 0.10 / MMPretrain
    1.2 / lt_plugins needs besides what torch allows by default (tensors, storages, dtypes,
    ``OrderedDict``). Found by unpickling real checkpoints of every shipped method with an
    empty list (``tests/test_checkpoint_loading.py`` keeps it exact). numpy 1.x writes its
    array and scalar constructors under ``numpy.core``, numpy 2 under ``numpy._core``: both
    names map to the installed numpy's functions."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    allowed = {
        'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer,
        'builtins.getattr': _history_buffer_statistic,
        'numpy.ndarray': np.ndarray,
        'numpy.dtype': np.dtype,
    }
    # the dtypes of the message hub's histories and numpy scalars: unpickling builds
    # instances of their classes (numpy.dtypes.Float64DType, ... on numpy >= 1.25)
    for dtype in (np.float64, np.int64):
        dtype_class = type(np.dtype(dtype))
        allowed[f'{dtype_class.__module__}.{dtype_class.__qualname__}'] = dtype_class
    for package in ('numpy._core', 'numpy.core'):
        allowed[f'{package}.multiarray._reconstruct'] = multiarray._reconstruct
        allowed[f'{package}.multiarray.scalar'] = multiarray.scalar
    return allowed


def trusted_checkpoints_enabled() -> bool:
    """Whether ``LT_PLUGINS_TRUSTED_CHECKPOINTS`` opts out of weights-only loading."""
    value = os.environ.get(TRUSTED_CHECKPOINTS_ENV, '').strip().lower()
    if value in ('', '0', 'false', 'no', 'off'):
        return False
    if value in ('1', 'true', 'yes', 'on'):
        return True
    raise ValueError(f'{TRUSTED_CHECKPOINTS_ENV}={os.environ[TRUSTED_CHECKPOINTS_ENV]!r}: '
                     'use 1 to load checkpoints with weights_only=False (trusted files only) '
                     'or 0 / unset for weights-only loading.')


def _refusal(filename: str, error: Exception) -> UntrustedCheckpointError:
    allowed = set(checkpoint_allowed_globals())
    allowed.update(f'{getattr(g, "__module__", "")}.{getattr(g, "__qualname__", "")}'
                   if not isinstance(g, tuple) else g[1]
                   for g in torch.serialization.get_safe_globals())
    try:
        unknown = [name for name in torch.serialization.get_unsafe_globals_in_checkpoint(
            filename) if name not in allowed]
    except Exception:  # not a zip checkpoint: torch's message below names what failed
        unknown = []
    detail = str(error).split('WeightsUnpickler error:')[-1].strip().split('\n')[0]
    if not unknown:  # a type that is built but not named as a global, e.g. a dtype class
        match = re.search(r"but got <class '([^']+)'>", detail)
        unknown = [match.group(1)] if match else []
    needs = (f'needs {", ".join(sorted(unknown))}, outside' if unknown else
             'needs something outside')
    return UntrustedCheckpointError(
        f'Refusing to load checkpoint {filename}: unpickling it {needs} the types mmengine, '
        'MMPretrain and lt_plugins put into checkpoints (lt_plugins.compat.'
        'checkpoint_allowed_globals), so loading it could run code. If you trust this file '
        f'(you or someone you trust wrote it), set {TRUSTED_CHECKPOINTS_ENV}=1 to load it '
        'with weights_only=False, or allow just those types with '
        f'torch.serialization.add_safe_globals([...]) before loading. torch: {detail}')


def _load_safetensors(filename: str, map_location: Optional[Any]) -> dict:
    try:
        from safetensors import safe_open
    except ImportError as err:
        raise ImportError(f'{filename} is a safetensors file: pip install safetensors') \
            from err
    device = str(map_location) if isinstance(map_location, (str, torch.device)) else 'cpu'
    state_dict = {}
    with safe_open(filename, framework='pt', device=device) as f:
        metadata = f.metadata() or {}
        for key in f.keys():
            state_dict[key] = f.get_tensor(key)
    return {'state_dict': state_dict,
            'meta': json.loads(metadata.get(SAFETENSORS_META_KEY, '{}'))}


def load_from_local(filename: str, map_location: Optional[Any] = None) -> dict:
    """mmengine's local-file checkpoint loader, loading weights only.

    ``torch.load(weights_only=True)`` with :func:`checkpoint_allowed_globals` (plus any
    ``torch.serialization.add_safe_globals`` of the user); ``.safetensors`` files through
    safetensors (their ``lt_plugins_meta`` metadata becomes ``meta``). With
    ``LT_PLUGINS_TRUSTED_CHECKPOINTS=1``: ``weights_only=False``, for trusted files only.

    Raises:
        UntrustedCheckpointError: the file needs a type outside the allow-list.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if filename.endswith('.safetensors'):
        return _load_safetensors(filename, map_location)
    if trusted_checkpoints_enabled():
        from mmengine.logging import print_log
        print_log(f'{TRUSTED_CHECKPOINTS_ENV}=1: loading {filename} with weights_only=False '
                  '(unpickling runs code from the file).', logger='current',
                  level=logging.WARNING)
        return torch.load(filename, map_location=map_location, weights_only=False)
    allowed = [(obj, name) for name, obj in checkpoint_allowed_globals().items()]
    with torch.serialization.safe_globals(allowed):
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            raise _refusal(filename, err) from err


def _patch_checkpoint_loader() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
    from lt_plugins.engine.remote_checkpoints import register_remote_loaders
    register_remote_loaders()


# -- 2. DDP without CUDA ---------------------------------------------------------
def _patch_cpu_distributed() -> None:
    import mmengine.dist.utils as dist_utils
    from mmengine.model.wrappers import MMDistributedDataParallel

    original_init_pytorch = dist_utils._init_dist_pytorch
    if getattr(original_init_pytorch, '_lt_plugins_patched', False):
        return

    @functools.wraps(original_init_pytorch)
    def init_dist_pytorch(backend: str, init_backend: str = 'torch', **kwargs) -> None:
        accelerator = (dist_utils.is_mlu_available() or dist_utils.is_npu_available()
                       or dist_utils.is_musa_available() or torch.cuda.is_available())
        if accelerator or init_backend != 'torch':
            return original_init_pytorch(backend, init_backend=init_backend, **kwargs)
        # CPU only: no torch.cuda.set_device, and nccl (mmengine's default) cannot work.
        if backend == 'nccl':
            backend = 'gloo'
        torch.distributed.init_process_group(backend=backend, **kwargs)

    init_dist_pytorch._lt_plugins_patched = True
    dist_utils._init_dist_pytorch = init_dist_pytorch

    original_ddp_init = MMDistributedDataParallel.__init__

    @functools.wraps(original_ddp_init)
    def ddp_init(self, module, detect_anomalous_params: bool = False, **kwargs):
        first_param = next(module.parameters(), None)
        if first_param is not None and first_param.device.type == 'cpu':
            kwargs.pop('device_ids', None)  # DDP wants device_ids=None for CPU modules
        original_ddp_init(self, module=module,
                          detect_anomalous_params=detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = ddp_init

    from mmengine.runner import Runner
    original_log_env = Runner._log_env
    if getattr(original_log_env, '_lt_plugins_patched', False):
        return

    @functools.wraps(original_log_env)
    def log_env(self, env_cfg: dict) -> None:
        # The environment block lists env_cfg as configured (dist_cfg backend 'nccl' by
        # default); add the backend the process group really runs on.
        env_cfg = dict(env_cfg)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            actual = str(torch.distributed.get_backend())
        else:
            actual = 'none (not distributed)'
        env_cfg['Distributed backend'] = actual
        original_log_env(self, env_cfg)
        requested = (env_cfg.get('dist_cfg') or {}).get('backend')
        if self.distributed and requested is not None and requested != actual:
            self.logger.info(
                f'Distributed backend: {actual} (env_cfg.dist_cfg.backend={requested!r} in the '
                f'config needs CUDA; lt_plugins.compat initialised {actual} on this machine)')

    log_env._lt_plugins_patched = True
    Runner._log_env = log_env


# -- 3. persistent_workers with num_workers=0 -----------------------------------
def _patch_dataloader_builder() -> None:
    from mmengine.runner import Runner

    original = Runner.build_dataloader
    if getattr(original, '_lt_plugins_patched', False):
        return

    @functools.wraps(original)
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        if isinstance(dataloader, dict) and dataloader.get('num_workers', 0) == 0 \
                and dataloader.get('persistent_workers', False):
            dataloader = type(dataloader)(dataloader)  # keep the caller's config intact
            dataloader['persistent_workers'] = False
        return original(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)

    build_dataloader._lt_plugins_patched = True
    Runner.build_dataloader = staticmethod(build_dataloader)


# -- 4. np.in1d for MMPretrain's retrieval metrics ---------------------------------
def _patch_retrieval_in1d() -> None:
    import numpy as np
    if hasattr(np, 'in1d'):
        return
    from mmpretrain.evaluation.metrics import retrieval

    numpy_with_in1d = types.ModuleType('numpy_with_in1d')
    numpy_with_in1d.__dict__.update(np.__dict__)
    numpy_with_in1d.in1d = lambda ar1, ar2, **kw: np.isin(np.ravel(ar1), ar2, **kw)
    retrieval.np = numpy_with_in1d


# -- 5. ClassCountsHook by default ---------------------------------------------------
def _patch_default_class_counts_hook() -> None:
    from mmengine.runner import Runner

    original = Runner.register_hooks
    if getattr(original, '_lt_plugins_patched', False):
        return

    @functools.wraps(original)
    def register_hooks(self, default_hooks=None, custom_hooks=None):
        from lt_plugins.engine.hooks import ClassCountsHook
        custom_hooks = list(custom_hooks or [])

        def is_counts_hook(hook) -> bool:
            kind = hook.get('type') if isinstance(hook, dict) else type(hook)
            name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
            return name.split('.')[-1] == 'ClassCountsHook'

        if not any(is_counts_hook(h) for h in custom_hooks):
            custom_hooks.append(dict(type=ClassCountsHook))
        return original(self, default_hooks, custom_hooks)

    register_hooks._lt_plugins_patched = True
    Runner.register_hooks = register_hooks


# -- 8. mid-epoch resume in epoch-based loops -------------------------------------------
def _patch_epoch_train_loop() -> None:
    from mmengine.runner import Runner

    original = Runner.build_train_loop
    if getattr(original, '_lt_plugins_patched', False):
        return

    @functools.wraps(original)
    def build_train_loop(self, loop):
        if isinstance(loop, dict) and 'type' not in loop and loop.get('by_epoch', False):
            from lt_plugins.engine.loops import MidEpochResumeTrainLoop
            loop = {k: v for k, v in loop.items() if k != 'by_epoch'}
            loop['type'] = MidEpochResumeTrainLoop
        return original(self, loop)

    build_train_loop._lt_plugins_patched = True
    Runner.build_train_loop = build_train_loop


# -- 6. pretrained timm weights without network -------------------------------------
OFFLINE_WEIGHTS_HELP = (
    'Load a local weight file instead: download it elsewhere, then set '
    "backbone=dict(type='TIMMBackbone', model_name=..., pretrained=True, "
    "pretrained_cfg_overlay=dict(file='/path/weights.safetensors')), or "
    "checkpoint_path='/path/state_dict.pth' (pretrained=False), or "
    "init_cfg=dict(type='Pretrained', checkpoint='/path/checkpoint.pth').")


def hub_weights_reachable(model_name: str, timeout: float = 3.0) -> bool:
    """True when timm can get ``model_name``'s pretrained weights: a local file, the hub
    cache, or a hub endpoint that answers within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlparse

    import timm
    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None:
        return True  # timm reports unknown names itself
    if cfg.file:
        return osp.isfile(cfg.file)
    if cfg.hf_hub_id:
        from huggingface_hub import constants, try_to_load_from_cache
        for weights in ('model.safetensors', 'pytorch_model.bin', 'open_clip_pytorch_model.bin'):
            if isinstance(try_to_load_from_cache(cfg.hf_hub_id, weights), str):
                return True
        if constants.HF_HUB_OFFLINE:
            return False
        endpoint = urlparse(constants.ENDPOINT)
    elif cfg.url:
        cached = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urlparse(cfg.url).path))
        if osp.isfile(cached):
            return True
        endpoint = urlparse(cfg.url)
    else:
        return True
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout):
            return True
    except OSError:
        return False


def _patch_timm_pretrained_offline() -> None:
    from mmpretrain.models.backbones.timm_backbone import TIMMBackbone

    original = TIMMBackbone.__init__
    if getattr(original, '_lt_plugins_patched', False):
        return

    @functools.wraps(original)
    def init(self, model_name, features_only=False, pretrained=False, checkpoint_path='',
             in_channels=3, init_cfg=None, **kwargs):
        overlay = kwargs.get('pretrained_cfg_overlay') or {}
        if pretrained and not overlay.get('file') and not hub_weights_reachable(model_name):
            raise RuntimeError(
                f'TIMMBackbone(model_name={model_name!r}, pretrained=True): the pretrained '
                'weights are not in the local cache and the hub cannot be reached. '
                + OFFLINE_WEIGHTS_HELP)
        original(self, model_name, features_only=features_only, pretrained=pretrained,
                 checkpoint_path=checkpoint_path, in_channels=in_channels, init_cfg=init_cfg,
                 **kwargs)

    init._lt_plugins_patched = True
    TIMMBackbone.__init__ = init


def apply_all() -> None:
    """Apply every fix once; safe to call repeatedly."""
    global _APPLIED
    if _APPLIED:
        return
    check_versions()
    _patch_checkpoint_loader()
    _patch_cpu_distributed()
    _patch_dataloader_builder()
    _patch_retrieval_in1d()
    _patch_default_class_counts_hook()
    _patch_timm_pretrained_offline()
    _patch_epoch_train_loop()
    _APPLIED = True
