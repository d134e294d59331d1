"""Checkpoints fetched by URL or by name load weights-only, like local files.

mmengine 0.10 registers a ``CheckpointLoader`` scheme for every remote or named source, and
each ends in its own ``torch.load``: ``http://`` / ``https://`` through
``torch.hub.load_state_dict_from_url``, whose default is ``weights_only=False`` (a
downloaded checkpoint runs code when loaded); ``torchvision://`` / ``modelzoo://``,
``open-mmlab://`` / ``openmmlab://`` and ``mmcls://`` map a name to such a URL (or, for
open-mmlab, to a file under the mmengine home); ``pavi://`` downloads into a temporary
folder and ``s3://`` / ``petrel://`` read bytes from a file backend.

:func:`register_remote_loaders` re-registers every one of those prefixes with a loader that
fetches the file the same way and reads it with :func:`lt_plugins.compat.load_from_local`:
the same allow-list, refusal message and ``LT_PLUGINS_TRUSTED_CHECKPOINTS`` opt-out, and
``.safetensors`` by extension. A refused download is deleted from the hub cache, so no
later load (of this package or any other tool) finds it there as if it were good; a file
already in the cache is checked on every load, and deleted too when refused.
"""
import logging
import os
import os.path as osp
import zipfile
from tempfile import TemporaryDirectory
from typing import Any, Callable, Dict, Optional, Tuple, Union
from urllib.parse import urlparse

import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.logging import print_log
from mmengine.runner import checkpoint as mm_checkpoint

from lt_plugins.compat import UntrustedCheckpointError, load_from_local


def _renamed(err: UntrustedCheckpointError, local: str,
             source: str) -> UntrustedCheckpointError:
    """The refusal of the temporary file ``local`` reworded to name ``source``."""
    return UntrustedCheckpointError(str(err).replace(local, source))


def _hub_cache_path(url: str, model_dir: Optional[str]) -> str:
    """Where ``torch.hub.load_state_dict_from_url`` keeps ``url``: ``model_dir`` (default
    ``<torch hub dir>/checkpoints``) joined with the last part of the URL path."""
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f'cannot load checkpoint {url!r}: the URL path names no file.')
    return osp.join(model_dir or osp.join(torch.hub.get_dir(), 'checkpoints'), name)


def _single_member_zip(path: str) -> Optional[zipfile.ZipInfo]:
    """The one file of a zip holding exactly one file (how torch < 1.6 checkpoints were
    sometimes compressed by hand; torch.hub unpacks those), else None."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    return members[0] if len(members) == 1 and not members[0].is_dir() else None


def _load_downloaded(path: str, url: str, map_location: Any) -> Any:
    """Read the cached download ``path`` of ``url`` weights-only; delete it when refused."""
    member, target = _single_member_zip(path), path
    if member is not None:
        target = osp.join(osp.dirname(path), osp.basename(member.filename))
        if target == path:
            target += '.unzipped'
        with zipfile.ZipFile(path) as archive, archive.open(member) as src, \
                open(target, 'wb') as dst:
            dst.write(src.read())
    try:
        return load_from_local(target, map_location)
    except UntrustedCheckpointError as err:
        for stale in {path, target}:
            try:
                os.remove(stale)
            except FileNotFoundError:  # another rank removed it first
                pass
        raise UntrustedCheckpointError(
            f'{err} It was downloaded from {url} and has been deleted from the download '
            f'cache ({osp.dirname(path)}), so nothing loads it from there later.') from err


def _load_url(url: str, model_dir: Optional[str], map_location: Any, progress: bool) -> Any:
    path = _hub_cache_path(url, model_dir)
    if not osp.exists(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
        print_log(f'Downloading {url} to {path}', logger='current')
        # torch writes a temporary file next to ``path`` and moves it there when complete
        torch.hub.download_url_to_file(url, path, None, progress=progress)
    return _load_downloaded(path, url, map_location)


def load_from_http(filename: str, map_location: Any = None, model_dir: Optional[str] = None,
                   progress: bool = os.isatty(0)) -> Any:
    """``http://`` / ``https://``: download into the torch hub cache (rank 0 first, the
    other ranks after a barrier, as mmengine does) and load weights-only.

    Raises:
        UntrustedCheckpointError: the file needs a type outside the allow-list; the
            download has been deleted from the cache.
    """
    rank, world_size = get_dist_info()
    checkpoint = None
    if rank == 0:
        checkpoint = _load_url(filename, model_dir, map_location, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = _load_url(filename, model_dir, map_location, progress)
    return checkpoint


def _model_url(table: Dict[str, str], name: str, filename: str) -> str:
    if name not in table:
        raise KeyError(f'cannot load checkpoint {filename!r}: mmengine knows no model named '
                       f'{name!r} under this prefix.')
    return table[name]


def load_from_torchvision(filename: str, map_location: Any = None) -> Any:
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``): torchvision's
    weight URL for NAME, loaded by :func:`load_from_http`."""
    if filename.startswith('modelzoo://'):
        print_log('The URL scheme of "modelzoo://" is deprecated, please use '
                  '"torchvision://" instead', logger='current', level=logging.WARNING)
        name = filename[len('modelzoo://'):]
    else:
        name = filename[len('torchvision://'):]
    url = _model_url(mm_checkpoint.get_torchvision_models(), name, filename)
    return load_from_http(url, map_location=map_location)


def load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: the URL (or file under the mmengine
    home) mmengine's model table gives NAME, loaded weights-only."""
    prefix = 'open-mmlab://' if filename.startswith('open-mmlab://') else 'openmmlab://'
    name = filename[len(prefix):]
    deprecated = mm_checkpoint.get_deprecated_model_names()
    if name in deprecated:
        print_log(f'{prefix}{name} is deprecated in favor of {prefix}{deprecated[name]}',
                  logger='current', level=logging.WARNING)
        name = deprecated[name]
    url = _model_url(mm_checkpoint.get_external_models(), name, filename)
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location=map_location)
    return load_from_local(osp.join(mm_checkpoint._get_mmengine_home(), url), map_location)


def load_from_mmcls(filename: str, map_location: Any = None) -> Any:
    """``mmcls://NAME``: the MMClassification checkpoint's URL, loaded weights-only, with
    the ``backbone.`` weights kept as mmengine does."""
    name = filename[len('mmcls://'):]
    url = _model_url(mm_checkpoint.get_mmcls_models(), name, filename)
    return mm_checkpoint._process_mmcls_checkpoint(
        load_from_http(url, map_location=map_location))


def _load_fetched(write: Callable[[str], None], name: str, source: str,
                  map_location: Any) -> Any:
    """Let ``write(path)`` put a checkpoint into a temporary folder as ``name`` (its
    extension kept, for ``.safetensors``), then load it weights-only; refusals name
    ``source``."""
    with TemporaryDirectory() as tmp_dir:
        path = osp.join(tmp_dir, osp.basename(name) or 'checkpoint.pth')
        write(path)
        try:
            return load_from_local(path, map_location)
        except UntrustedCheckpointError as err:
            raise _renamed(err, path, source) from err


def load_from_pavi(filename: str, map_location: Any = None) -> Any:
    """``pavi://PATH``: downloaded from the pavi model cloud into a temporary folder."""
    if not filename.startswith('pavi://'):
        raise ValueError(f'expected a path starting with pavi://, got {filename!r}')
    try:
        from pavi import modelcloud
    except ImportError as err:
        raise ImportError('Please install pavi to load checkpoint from modelcloud.') from err
    model = modelcloud.get(filename[len('pavi://'):])
    return _load_fetched(model.download, model.name, filename, map_location)


def load_from_ceph(filename: str, map_location: Any = None, backend: str = 'petrel') -> Any:
    """``s3://`` / ``petrel://`` (optionally ``NAME:s3://``): the bytes of the file
    backend, written to a temporary file and loaded weights-only."""
    file_backend = get_file_backend(filename, backend_args={'backend': backend})

    def write(path: str) -> None:
        with open(path, 'wb') as f:
            f.write(file_backend.get(filename))

    return _load_fetched(write, filename, filename, map_location)


# prefix (as mmengine 0.10 registers it) -> weights-only loader
REMOTE_LOADERS: Dict[Union[str, Tuple[str, ...]], Callable] = {
    ('http://', 'https://'): load_from_http,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    'mmcls://': load_from_mmcls,
    'pavi://': load_from_pavi,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
}


def register_remote_loaders() -> None:
    """Register the weights-only loaders for every remote or named prefix (idempotent)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    for prefixes, loader in REMOTE_LOADERS.items():
        CheckpointLoader.register_scheme(
            prefixes=list(prefixes) if isinstance(prefixes, tuple) else prefixes,
            loader=loader, force=True)
