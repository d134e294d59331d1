"""Train a model from a config: MMPretrain's ``tools/train.py`` arguments, plus lt_plugins.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp | --no-amp]
        [--no-channels-last] [--compile] [--no-validate]
        [--auto-scale-lr] [--no-pin-memory] [--no-persistent-workers]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Differences from MMPretrain's script: ``lt_plugins`` is imported even when the config does
not list it in ``custom_imports`` (so the compatibility fixes always apply), and
``persistent_workers`` is only requested where ``num_workers > 0``, and ``--amp`` /
``--no-amp`` / ``--no-channels-last`` / ``--compile`` set the config's ``fast_path``
(bfloat16 autocast where the CPU supports it, channels-last, torch.compile; see
``lt_plugins/engine/fast_path.py``).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import lt_plugins  # noqa: F401  (registration and compatibility fixes)
from lt_plugins.engine.fast_path import fast_path_from_flags
from lt_plugins.engine.runner_utils import close_process_group, set_dataloader_defaults


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a classifier (lt_plugins)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or from the latest one in the '
                        'work dir when no path is given')
    amp = parser.add_mutually_exclusive_group()
    amp.add_argument('--amp', dest='amp', action='store_true', default=None,
                     help='mixed precision: bfloat16 autocast on CPU (refused without native '
                     'bfloat16), AmpOptimWrapper on CUDA; default: the config\'s fast_path '
                     '(bfloat16 where the CPU supports it)')
    amp.add_argument('--no-amp', dest='amp', action='store_false', help='train in float32')
    parser.add_argument('--no-channels-last', action='store_true',
                        help='keep the backbone in the NCHW layout (fast_path.channels_last)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone (fast_path.compile)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr with the total batch size')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='disable pin_memory in dataloaders')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='disable persistent_workers in dataloaders')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_epochs=5')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp is not None or args.no_channels_last or args.compile:
        # the fast path (lt_plugins/engine/fast_path.py) chooses the optimizer wrapper
        cfg.fast_path = fast_path_from_flags(
            amp=args.amp, channels_last=False if args.no_channels_last else None,
            compile=True if args.compile else None, base=cfg.get('fast_path'))
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    set_dataloader_defaults(cfg, args.no_pin_memory, args.no_persistent_workers)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main() -> None:
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    runner = Runner.from_cfg(cfg)
    runner.train()
    close_process_group()


if __name__ == '__main__':
    main()
