"""Choose tau for tau-normalisation on the validation split (Kang et al. 2019, Sec. 4).

    python tools/tau_norm_search.py CONFIG STAGE1_CHECKPOINT [--taus 0 0.2 ... 2.0]
        [--metric shot/top1] [--cfg-options k=v ...]

CONFIG uses ``TauNormHead`` (e.g. ``configs/baselines/taunorm_*.py``). Each tau is evaluated
with the config's *validation* dataloader (never the test split); the table and the best
tau are printed, then test with ``--cfg-options model.head.tau=<best>``.
"""
import argparse
import os.path as osp

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import lt_plugins  # noqa: F401
from lt_plugins.engine.runner_utils import set_dataloader_defaults
from lt_plugins.evaluation.shot_table import format_shot_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--taus', type=float, nargs='+',
                        default=[float(t) for t in np.round(np.arange(0, 2.01, 0.2), 2)])
    parser.add_argument('--metric', default='shot/top1', help='validation metric to maximise')
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()

    cfg = Config.fromfile(args.config)
    if cfg.model.head.get('type') != 'TauNormHead':
        raise ValueError(f'{args.config}: model.head.type is {cfg.model.head.get("type")!r}; '
                         "tau search needs head=dict(type='TauNormHead').")
    if cfg.get('val_dataloader') is None:
        raise ValueError(f'{args.config} has no val_dataloader: tau is chosen on validation.')
    cfg.work_dir = args.work_dir or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0] + '_tau_search')
    cfg.load_from, cfg.resume = args.checkpoint, False
    set_dataloader_defaults(cfg, no_pin_memory=True, no_persistent_workers=True)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # Evaluate the validation split through the test loop: one Runner, one checkpoint load.
    cfg.test_dataloader, cfg.test_evaluator = cfg.val_dataloader, cfg.val_evaluator
    runner = Runner.from_cfg(cfg)
    results = {}
    for tau in args.taus:
        runner.model.head.tau = tau
        results[tau] = runner.test()
        print(format_shot_table(results[tau], title=f'val, tau={tau:g}'))
    best = max(results, key=lambda t: results[t][args.metric])
    print(f'best tau on the validation split by {args.metric}: {best:g} '
          f'({results[best][args.metric]:.2f})')


if __name__ == '__main__':
    main()
