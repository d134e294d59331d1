"""Checkpoints that a kill cannot leave half-written, and an auto-resume that never trusts one.

mmengine writes a checkpoint in place, so a process killed during ``torch.save`` leaves a
truncated ``epoch_N.pth``; it writes ``last_checkpoint`` in place too, and with
``max_keep_ckpts`` it deletes the oldest checkpoint *before* writing the new one. Installed
on ``import lt_plugins`` (:func:`install_atomic_checkpoints`), scoped to mmengine's runner
and ``CheckpointHook``:

* ``Runner.save_checkpoint`` writes local checkpoints to a temporary file in the same folder
  (``.<name>.tmp-<pid>``), flushes it to disk and renames it over the final name (atomic on
  POSIX), so ``epoch_N.pth`` is either absent or complete. Other storage backends keep
  mmengine's writer.
* ``CheckpointHook`` writes ``last_checkpoint`` the same way, after that rename, and removes
  the checkpoints beyond ``max_keep_ckpts`` only once the new one is in place.
* Auto-resume (``--resume`` without a file, ``resume=True``) checks the checkpoint named by
  ``last_checkpoint`` (zip integrity and CRC of every member, or a trial load for a file in
  another format); when it is missing, truncated or unreadable it resumes from the newest
  readable checkpoint of the work dir instead, with a warning naming both files. When no
  checkpoint is readable it raises: a resumed run never silently restarts at epoch 0.
  Unfinished temporary files of a killed write are removed (logged).
"""
import builtins
import functools
import glob
import os
import os.path as osp
import zipfile
from typing import List, Optional, Tuple

from mmengine.logging import MMLogger

TMP_MARK = '.tmp-'
LAST_CHECKPOINT = 'last_checkpoint'


class NoReadableCheckpointError(RuntimeError):
    """Auto-resume found checkpoints but none of them can be read."""


def tmp_path_for(path: str) -> str:
    """The temporary file a checkpoint ``path`` is written to before its rename."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}{TMP_MARK}{os.getpid()}')


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or '.', os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = tmp_path_for(path)
    try:
        with builtins.open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


class _AtomicTextFile:
    """``open(path, 'w')`` stand-in: text goes to a temporary file, renamed on a clean exit."""

    def __init__(self, path: str, encoding: Optional[str] = None) -> None:
        self.path = str(path)
        self.parts: List[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def __enter__(self) -> '_AtomicTextFile':
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            atomic_write_bytes(''.join(self.parts).encode('utf-8'), self.path)
        return False


def _checkpoint_hook_open(file, mode='r', *args, **kwargs):
    """``open`` as seen by mmengine's ``checkpoint_hook`` module: ``last_checkpoint`` is
    written atomically, everything else as usual."""
    if mode == 'w' and osp.basename(str(file)) == LAST_CHECKPOINT:
        return _AtomicTextFile(file, kwargs.get('encoding'))
    return builtins.open(file, mode, *args, **kwargs)


def _is_local(path: str, backend_args) -> bool:
    from mmengine.fileio import LocalBackend, get_file_backend
    try:
        backend = get_file_backend(path, backend_args=backend_args)
    except Exception:  # noqa: B902  (an unknown scheme: leave it to mmengine)
        return False
    return isinstance(backend, LocalBackend)


def atomic_save_checkpoint(checkpoint, filename, file_client_args=None, backend_args=None):
    """mmengine's ``save_checkpoint`` with local files written atomically (see the module)."""
    from mmengine.runner import checkpoint as mm_checkpoint
    filename = str(filename)
    if file_client_args is not None or not _is_local(filename, backend_args):
        return mm_checkpoint.save_checkpoint(checkpoint, filename, file_client_args,
                                             backend_args)
    import io

    import torch
    with io.BytesIO() as buf:
        torch.save(checkpoint, buf)
        atomic_write_bytes(buf.getvalue(), filename)


# -- reading back ------------------------------------------------------------------------
def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from, or None when it reads back.

    A torch zip checkpoint is checked without unpickling (the zip directory and the CRC of
    every member: a file cut short has no directory, a damaged one fails a CRC); a file in
    another format gets a trial load through mmengine's loader (the package's loading policy
    included).
    """
    if not osp.isfile(path):
        return 'the file does not exist'
    size = osp.getsize(path)
    if size == 0:
        return 'the file is empty (0 bytes)'
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as err:
            return (f'the archive is cut short or damaged ({type(err).__name__}: {err}; '
                    f'{size} bytes on disk)')
        if bad is not None:
            return f'member {bad} fails its CRC check ({size} bytes on disk)'
        if not any(name.endswith('data.pkl') for name in names):
            return f'not a torch checkpoint (no data.pkl; {size} bytes on disk)'
        return None
    from mmengine.runner.checkpoint import CheckpointLoader
    try:
        CheckpointLoader.load_checkpoint(path, map_location='cpu', logger='silent')
    except Exception as err:  # noqa: B902  (any failure to read makes it unusable)
        return (f'not a complete zip archive (cut short?) and loading it fails: '
                f'{type(err).__name__}: {err} ({size} bytes on disk)')
    return None


def _candidates(folders: List[str], exclude: Optional[str]) -> List[str]:
    """Checkpoints (``*.pth``, not ``best_*``) in ``folders``, newest first (mtime)."""
    found = {}
    for folder in folders:
        for path in glob.glob(osp.join(folder, '*.pth')):
            name = osp.basename(path)
            if name.startswith('best_') or TMP_MARK in name:
                continue
            found[osp.abspath(path)] = path
    if exclude is not None:
        found.pop(osp.abspath(exclude), None)
    paths = list(found.values())
    paths.sort(key=lambda p: (osp.getmtime(p), p), reverse=True)
    return paths


def _remove_unfinished_writes(folders: List[str], logger) -> None:
    from mmengine.dist import is_main_process
    if not is_main_process():
        return
    for folder in folders:
        for path in glob.glob(osp.join(folder, f'.*{TMP_MARK}*')):
            try:
                os.remove(path)
            except OSError:
                continue
            logger.warning(f'Removed {path}: an unfinished checkpoint write of a killed run.')


def resolve_resume_checkpoint(work_dir: str, logger=None) -> Optional[str]:
    """The checkpoint auto-resume should load from ``work_dir``, or None to start afresh.

    The one named by ``last_checkpoint`` when it reads back; else the newest readable
    ``*.pth`` of its folder and the work dir (a warning names both files). None when there is
    no ``last_checkpoint`` and no checkpoint. Raises :class:`NoReadableCheckpointError` when
    checkpoints exist but none reads back.
    """
    logger = logger or MMLogger.get_current_instance()
    record = osp.join(work_dir, LAST_CHECKPOINT)
    named: Optional[str] = None
    why: Optional[str] = None
    if osp.isfile(record):
        with builtins.open(record) as f:
            named = f.read().strip() or None
        if named is None:
            why = f'{record} is empty (killed while writing it?)'
    folders = [work_dir] + ([osp.dirname(named)] if named and osp.dirname(named) else [])
    _remove_unfinished_writes(folders, logger)
    if named is not None:
        problem = checkpoint_problem(named)
        if problem is None:
            return named
        why = f'{record} names {named}, which cannot be resumed from: {problem}'
    tried: List[Tuple[str, str]] = []
    for path in _candidates(folders, exclude=named):
        problem = checkpoint_problem(path)
        if problem is None:
            if why is None:
                why = f'{record} does not exist'
            logger.warning(f'Auto-resume: {why}. Resuming from {path} instead, the newest '
                           'readable checkpoint (the training since then is repeated).')
            return path
        tried.append((path, problem))
    if why is None:  # nothing recorded, nothing saved: a fresh start, as mmengine does
        return None
    listed = ''.join(f'\n  {p}: {reason}' for p, reason in tried) or ' (none)'
    raise NoReadableCheckpointError(
        f'Auto-resume: {why}, and no other checkpoint in {", ".join(folders)} reads back; '
        f'tried:{listed}\nRestore a checkpoint, or start from epoch 0 deliberately (drop '
        '`--resume` or use a new work_dir).')


# -- installation -----------------------------------------------------------------------
def _patch_load_or_resume() -> None:
    from mmengine.runner import Runner
    original = Runner.load_or_resume
    if getattr(original, '_lt_atomic', False):
        return

    @functools.wraps(original)
    def load_or_resume(self) -> None:
        if not self._has_loaded and self._resume and self._load_from is None:
            resume_from = resolve_resume_checkpoint(self.work_dir, self.logger)
            if resume_from is not None:
                self.logger.info(f'Auto resumed from the latest checkpoint {resume_from}.')
                self.resume(resume_from)
                self._has_loaded = True
                return None
        return original(self)

    load_or_resume._lt_atomic = True
    Runner.load_or_resume = load_or_resume


def _patch_checkpoint_hook() -> None:
    from mmengine.hooks import CheckpointHook
    from mmengine.hooks import checkpoint_hook as hook_module
    hook_module.open = _checkpoint_hook_open  # module global: only that module's `open`
    original = CheckpointHook._save_checkpoint_with_step
    if getattr(original, '_lt_atomic', False):
        return

    @functools.wraps(original)
    def save_with_step(self, runner, step, meta):
        backend = getattr(self, 'file_backend', None)
        if backend is None:
            return original(self, runner, step, meta)
        deferred = []
        shadowed = {name: backend.__dict__.get(name) for name in ('remove', 'rmtree')}
        backend.remove = lambda path: deferred.append(('remove', path))
        backend.rmtree = lambda path: deferred.append(('rmtree', path))
        try:
            original(self, runner, step, meta)
        finally:  # restore the backend's own methods
            for name, value in shadowed.items():
                if value is None:
                    backend.__dict__.pop(name, None)
                else:
                    setattr(backend, name, value)
        # the new checkpoint and last_checkpoint are in place: now drop the old ones
        for name, path in deferred:
            getattr(backend, name)(path)

    save_with_step._lt_atomic = True
    CheckpointHook._save_checkpoint_with_step = save_with_step


def install_atomic_checkpoints() -> None:
    """Atomic checkpoint writes and a fallback on auto-resume (see the module). Idempotent."""
    from mmengine.runner import runner as runner_module
    runner_module.save_checkpoint = atomic_save_checkpoint
    _patch_checkpoint_hook()
    _patch_load_or_resume()


__all__ = ['NoReadableCheckpointError', 'atomic_save_checkpoint', 'atomic_write_bytes',
           'checkpoint_problem', 'install_atomic_checkpoints', 'resolve_resume_checkpoint']
