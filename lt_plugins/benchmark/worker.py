"""One benchmark stage in its own process: train, then evaluate every reading on val and test.

    python -m lt_plugins.benchmark.worker TASK.json
    python -m lt_plugins.benchmark.worker --serve     # task paths on stdin, one per line

``TASK.json`` (written by :mod:`.runner`) names the stage config file, the checkpoint it
loads, whether it trains, its readings (inference-only cfg overrides) and where the result
goes; with ``previous`` (an earlier result of the stage) it only evaluates the readings that
result lacks, on its checkpoint, and adds them to it. The result JSON holds the training
wall time, the mean training step time, the commit of the checkout that trained it
(``git_commit``), and per
reading the val / test metrics (overall, many, medium, few) and per-class accuracies.

A training stage checkpoints every epoch. When its work dir holds the checkpoint of an
interrupted run of the very same config (``config.started.py``, written when training starts,
equals today's ``config.py``), the stage resumes from it (mmengine's resume: model, optimizer,
schedulers, memory buffers, epoch) instead of starting over, unless the task says
``resume: false`` (``run.py --force``); the result records ``resumed_from_epoch``. The
augmentations' random draws are not replayed, so a resumed stage is an equivalent
continuation, not bit-identical to an uninterrupted one.
"""
import json
import os
import os.path as osp
import re
import shutil
import sys
import time
from typing import Dict, Optional


def _shot(metrics: Dict[str, float]) -> Dict[str, float]:
    out = {}
    for key, value in metrics.items():
        out[key.split('/')[-1]] = float(value)
    return out


def _progress_hook(path: str):
    from mmengine.hooks import Hook

    class ProgressHook(Hook):
        """Step times and a progress file (epoch, ETA) the runner prints from."""
        priority = 'VERY_LOW'

        def __init__(self):
            self.step_times = []
            self._t0 = None

        def before_train(self, runner):
            self._start = time.perf_counter()
            self._first_epoch = runner.epoch     # > 0 when resumed

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self._t = time.perf_counter()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.step_times.append(time.perf_counter() - self._t)

        def after_train_epoch(self, runner):
            done, total = runner.epoch + 1, runner.max_epochs   # counted after this hook
            spent = time.perf_counter() - self._start
            eta = spent / max(done - self._first_epoch, 1) * (total - done)
            tmp = path + '.tmp'
            with open(tmp, 'w') as f:
                json.dump(dict(epoch=done, max_epochs=total, eta_s=eta, spent_s=spent), f)
            os.replace(tmp, path)

        @property
        def mean_step(self) -> float:
            times = self.step_times[1:] or self.step_times   # the first step warms up
            return sum(times) / len(times) if times else float('nan')

    return ProgressHook()


def _evaluate(runner, per_class_dir: str, name: str) -> dict:
    out = {}
    for split in ('val', 'test'):
        evaluator = getattr(runner, f'{split}_loop').evaluator
        path = osp.join(per_class_dir, f'{name}_{split}.json')
        for metric in evaluator.metrics:
            if hasattr(metric, 'per_class_out'):
                metric.per_class_out = path
        metrics = runner.val() if split == 'val' else runner.test()
        out[split] = _shot(metrics)
        if osp.isfile(path):
            with open(path) as f:
                rows = json.load(f)['per_class']
            out[f'{split}_per_class'] = [r['accuracy'] for r in rows]
            out['train_counts'] = [r['train_count'] for r in rows]
    return out


def git_commit(repo: Optional[str] = None) -> Optional[str]:
    """HEAD of the checkout at ``repo`` (default: this package's), with ``+dirty`` when tracked
    files differ from it; None outside a git checkout or without git."""
    import subprocess
    if repo is None:
        from .datasets import REPO as repo
    try:
        head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=repo, capture_output=True,
                              text=True, timeout=30)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(['git', 'diff', '--quiet', 'HEAD', '--'], cwd=repo,
                               capture_output=True, timeout=30).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ('+dirty' if dirty else '')


def interrupted_checkpoint(config_path: str, max_epochs: int) -> Optional[str]:
    """The last checkpoint of an interrupted training run of the config at ``config_path`` in
    its work dir (None: no such run, another config, or a finished run)."""
    work_dir = osp.dirname(config_path)
    started = osp.join(work_dir, 'config.started.py')
    marker = osp.join(work_dir, 'last_checkpoint')
    if not (osp.isfile(started) and osp.isfile(marker)):
        return None
    with open(started) as f, open(config_path) as g:
        if f.read() != g.read():
            return None
    with open(marker) as f:
        ckpt = f.read().strip()
    match = re.search(r'epoch_(\d+)\.pth$', ckpt)
    if not (osp.isfile(ckpt) and match and int(match.group(1)) < max_epochs):
        return None
    return ckpt


def run_task(task: dict) -> dict:
    """Run one stage (see the module docstring); returns and writes the result."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import CheckpointLoader, Runner

    import lt_plugins  # noqa: F401  (registration, compatibility fixes)
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    cfg = Config.fromfile(task['config'])
    work_dir = cfg.work_dir
    per_class_dir = osp.join(work_dir, 'per_class')
    os.makedirs(per_class_dir, exist_ok=True)
    result = dict(stage=task['stage'], seed=task['seed'], train=task['train'],
                  config=task['config'], readings={})
    previous = task.get('previous')
    resumed = None
    if task['train'] and not previous:
        resumed = (interrupted_checkpoint(task['config'], int(cfg.train_cfg.max_epochs))
                   if task.get('resume', True) else None)
        if resumed:
            cfg.resume, cfg.load_from = True, resumed
        else:
            shutil.copyfile(task['config'], osp.join(work_dir, 'config.started.py'))
    runner = None if previous else Runner.from_cfg(cfg)
    if previous:          # a reading top-up of a finished stage: keep its numbers
        with open(previous) as f:
            result = json.load(f)
    elif task['train']:
        hook = _progress_hook(osp.join(work_dir, 'progress.json'))
        runner.register_hook(hook)
        if resumed:
            runner.logger.info(f'resuming the interrupted run from {resumed} (wall_s and '
                               'step_s of the result cover the rest)')
        t0 = time.perf_counter()
        runner.train()
        result['wall_s'] = time.perf_counter() - t0
        result['step_s'] = hook.mean_step
        result['epochs'] = runner.max_epochs
        result['checkpoint'] = osp.join(work_dir, f'epoch_{runner.max_epochs}.pth')
        result['commit'] = git_commit()
        if resumed:
            result['resumed_from_epoch'] = int(re.search(r'epoch_(\d+)', resumed).group(1))
    else:
        result.update(wall_s=0.0, step_s=None, epochs=0, checkpoint=cfg.load_from,
                      commit=git_commit())
    ckpt = result['checkpoint']
    saved = None
    for i, (name, overrides) in enumerate(task['readings'].items()):
        if i > 0 or overrides or previous:   # a fresh model read with other settings
            rcfg = Config.fromfile(task['config'])
            rcfg.merge_from_dict(dict(overrides, load_from=ckpt,
                                      experiment_name=f'reading-{name}-{i}'))
            runner = Runner.from_cfg(rcfg)
            # load_from is not strict: a reading must fit the trained model
            if task['train'] or (previous and result['train']):
                if saved is None:  # weights-only, like every checkpoint load
                    saved = set(CheckpointLoader.load_checkpoint(
                        ckpt, map_location='cpu', logger='silent')['state_dict'])
                expected = set(runner.model.state_dict())
                if saved != expected:
                    raise ValueError(
                        f'reading {name!r} of {task["stage"]}: its model does not match '
                        f'{ckpt} (missing {sorted(expected - saved)[:4]}, unexpected '
                        f'{sorted(saved - expected)[:4]}); a reading may only change '
                        'inference settings')
        result['readings'][name] = _evaluate(runner, per_class_dir, name)
    tmp = task['result'] + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, task['result'])
    if previous and osp.abspath(previous) != osp.abspath(task['result']):
        os.remove(previous)
    return result


def serve(stream=None) -> None:
    """Run the tasks whose paths arrive one per line on ``stream`` (stdin), one after another.

    A long-lived worker per job slot imports torch / MMPretrain once instead of once per
    stage (tens of seconds on a loaded 2-core machine). A task that raises writes its
    traceback to ``error.txt`` next to its result and the worker takes the next one.
    """
    import gc
    import traceback
    stream = stream or sys.stdin
    for line in stream:
        path = line.strip()
        if not path:
            continue
        with open(path) as f:
            task = json.load(f)
        try:
            run_task(task)
        except Exception:  # noqa: BLE001  (reported to the runner through error.txt)
            with open(osp.join(osp.dirname(task['result']), 'error.txt'), 'w') as f:
                f.write(traceback.format_exc())
        print(f'finished {path}', flush=True)
        gc.collect()


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ['--serve']:
        import torch
        import lt_plugins  # noqa: F401
        torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
        serve()
        return
    if len(argv) != 1:
        raise SystemExit('usage: python -m lt_plugins.benchmark.worker TASK.json | --serve')
    with open(argv[0]) as f:
        run_task(json.load(f))


if __name__ == '__main__':
    main()
