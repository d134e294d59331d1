"""Evaluate a checkpoint: MMPretrain's ``tools/test.py`` arguments, plus a shot table.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.json]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
        [--allow-key-mismatch]

Prints the many / medium / few-shot table of ``ShotAccuracy`` and, with ``--out``, writes
the metrics as JSON. Checkpoints are loaded weights-only, with an allow-list of the types
mmengine checkpoints hold (see ``lt_plugins.compat``); ``.safetensors`` files work too.
"""
import argparse
import copy
import json
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner

import lt_plugins  # noqa: F401  (registration and compatibility fixes)
from lt_plugins.engine.checkpoint_check import check_checkpoint_keys
from lt_plugins.evaluation.shot_table import format_shot_table
from lt_plugins.engine.runner_utils import close_process_group, set_dataloader_defaults


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a classifier (lt_plugins)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation log')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='disable pin_memory in dataloaders')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--allow-key-mismatch', action='store_true',
                        help='evaluate even when the checkpoint has missing / unexpected '
                        'keys or tensors of another shape for this config (refused otherwise)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_runner(config, checkpoint: str, work_dir: Optional[str] = None,
                 cfg_options: Optional[dict] = None, launcher: str = 'none',
                 no_pin_memory: bool = False, allow_key_mismatch: bool = False) -> Runner:
    """The test runner of ``config`` (a path or a ``Config``) on ``checkpoint``, its keys
    checked against the model (refused on a mismatch unless ``allow_key_mismatch``)."""
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        stem = osp.splitext(osp.basename(config))[0] if isinstance(config, str) else 'test'
        cfg.work_dir = osp.join('./work_dirs', stem)
    cfg.load_from = checkpoint
    cfg.resume = False
    set_dataloader_defaults(cfg, no_pin_memory, no_persistent_workers=True)
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    runner = Runner.from_cfg(cfg)
    check_checkpoint_keys(runner.model, checkpoint, allow_mismatch=allow_key_mismatch,
                          logger=runner.logger)
    return runner


def main() -> None:
    args = parse_args()
    runner = build_runner(args.config, args.checkpoint, args.work_dir, args.cfg_options,
                          args.launcher, args.no_pin_memory, args.allow_key_mismatch)
    metrics = runner.test()
    if is_main_process():
        print(format_shot_table(metrics, title=osp.basename(args.config)))
        if args.out:
            with open(args.out, 'w') as f:
                json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)
    close_process_group()


if __name__ == '__main__':
    main()
