"""Config helpers shared by tools/train.py and tools/test.py."""
from copy import deepcopy

from mmengine.config import Config, ConfigDict

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def set_dataloader_defaults(cfg: Config, no_pin_memory: bool,
                            no_persistent_workers: bool) -> None:
    """MMPretrain's dataloader defaults, with persistent workers only where there are workers."""
    for field in DATALOADERS:
        if cfg.get(field) is None:
            continue
        loader = ConfigDict(pin_memory=True, collate_fn=dict(type='default_collate'))
        loader.update(deepcopy(cfg[field]))
        workers = loader.get('num_workers', 0)
        loader.setdefault('persistent_workers', workers > 0)
        if no_pin_memory:
            loader.pin_memory = False
        if no_persistent_workers or workers == 0:
            loader.persistent_workers = False
        cfg[field] = loader


def close_process_group() -> None:
    """End a finished distributed run cleanly: destroy the process group before the
    interpreter exits. Left to exit-time destructors, gloo's worker threads can abort a rank
    ("terminate called without an active exception", SIGABRT) after all its work is done,
    which fails a run that trained correctly. Call it only after the run succeeded (on an
    error the other ranks may still wait in a collective)."""
    import torch.distributed as torch_dist
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
