"""Plan and run the stages of the selected arms: shared stages, parallel pinned jobs, resume.

Each stage of each seed runs once in a worker process (``python -m
lt_plugins.benchmark.worker``) pinned to its own CPU cores (``sched_setaffinity``) with as
many OpenMP threads as cores; a stage waits for its parent's checkpoint. A stage whose result
JSON exists is not run again unless ``force``; when it lacks readings that newly selected
arms need, only those are evaluated on its checkpoint (no training) and added to it. The
layout under ``work_dir``::

    <dataset tag>/<schedule>[-quick]/s<seed>/<stage chain, e.g. ce/crt>/
        config.py  task.json  result.json (error.txt)  epoch_N.pth  per_class/  <timestamp>/ (logs)

A slot worker (one per job, imported once) logs to ``worker-cores<ids>.log`` in the run root.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

from .arms import Arm, Stage
from .configs import build_stage_config, checkpoint_of, resolve
from .datasets import REPO, DatasetSpec


@dataclass(eq=False)
class Task:
    stage: Stage
    seed: int
    dir: str
    parent: Optional['Task'] = None
    arms: List[str] = field(default_factory=list)
    readings: List[str] = field(default_factory=list)
    proc: Optional[subprocess.Popen] = None
    cores: Sequence[int] = ()
    started: float = 0.0
    last_progress: str = ''
    failed: bool = False

    @property
    def result_path(self) -> str:
        return osp.join(self.dir, 'result.json')

    @property
    def label(self) -> str:
        return f's{self.seed} {self.stage.key}'


def run_root(work_dir: str, spec: DatasetSpec, schedule: str, quick: bool) -> str:
    return osp.join(work_dir, spec.tag, schedule + ('-quick' if quick else ''))


def plan(arms: Sequence[Arm], seeds: Sequence[int], root: str) -> List[Task]:
    """One task per (seed, stage chain), parents before children."""
    tasks: Dict[tuple, Task] = {}
    for seed in seeds:
        for arm in arms:
            parent = None
            for stage in arm.stage.chain():
                key = (seed, stage.key)
                if key not in tasks:
                    tasks[key] = Task(stage, seed, osp.join(root, f's{seed}', stage.key),
                                      parent)
                parent = tasks[key]
                parent.arms.append(arm.name)      # the arms a stage serves (progress lines)
            parent.readings += [r for r in arm.reading_names if r not in parent.readings]
    return list(tasks.values())


def quick_indices(spec: DatasetSpec, n_train: int = 256, n_eval: int = 200
                  ) -> Dict[str, List[int]]:
    """Evenly spread images of each split for ``--quick`` (every class keeps a share)."""
    import numpy as np
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS

    import lt_plugins  # noqa: F401
    init_default_scope('mmpretrain')
    out = {}
    for split, n in (('train', n_train), ('val', n_eval), ('test', n_eval)):
        ds = DATASETS.build(dict(type=spec.type, split=split, pipeline=[], **spec.kwargs))
        total = len(ds)
        out[f'{split}_dataloader'] = np.unique(np.linspace(0, total - 1, min(total, n)).astype(
            int)).tolist()
    return out


def core_groups(jobs: int) -> List[List[int]]:
    """Split the cores this process may use into ``jobs`` groups (shared when too few)."""
    cores = sorted(os.sched_getaffinity(0))
    if jobs <= len(cores):
        per = len(cores) // jobs
        return [cores[i * per:(i + 1) * per] for i in range(jobs)]
    return [[cores[i % len(cores)]] for i in range(jobs)]


class BenchmarkRunner:
    """Runs the planned tasks (see the module docstring).

    Args:
        spec: the dataset.
        schedule: ``'cpu'`` or ``'paper'``.
        work_dir: root of all runs.
        jobs: parallel worker processes (0: run the stages in this process, one after
            another, without pinning; the tests use it).
        device: ``'cpu'`` or ``'cuda'`` (every job shares the one GPU).
        amp: mixed precision (``None``: the fast path's choice, see
            :func:`~.configs.build_stage_config`).
        channels_last, compile: the fast path's other parts (``None``: config default).
        quick: 1 epoch on a few hundred images per split (smoke test).
        force: re-run stages whose result exists.
        feature_cache: FeatureCacheHook views on the cacheable (frozen-backbone) stages.
        log: function printing the progress lines.
    """

    def __init__(self, spec: DatasetSpec, schedule: str, work_dir: str, jobs: int = 1,
                 device: str = 'cpu', amp: Optional[bool] = None, quick: bool = False,
                 force: bool = False, feature_cache: int = 0, log=print,
                 channels_last: Optional[bool] = None,
                 compile: Union[bool, dict, None] = None) -> None:
        if jobs < 0:
            raise ValueError(f'--jobs must be >= 0 (0: every stage in this process, one after '
                             f'another), got {jobs}')
        if device not in ('cpu', 'cuda'):
            raise ValueError(f'--device {device!r}: choose cpu or cuda')
        self.spec, self.schedule, self.jobs = spec, schedule, jobs
        self.device, self.amp, self.quick, self.force = device, amp, quick, force
        self.feature_cache = feature_cache
        self.channels_last, self.compile = channels_last, compile
        self.root = run_root(work_dir, spec, schedule, quick)
        self.log = log
        self._indices = None
        self._slots: Dict[tuple, subprocess.Popen] = {}

    @staticmethod
    def _complete(task: Task) -> bool:
        """The result exists and holds every reading the selected arms need."""
        if not osp.isfile(task.result_path):
            return False
        with open(task.result_path) as f:
            have = json.load(f).get('readings', {})
        return all(r in have for r in task.readings)

    def _previous(self, task: Task) -> Optional[str]:
        """The result of an earlier run of ``task`` whose checkpoint still exists (a
        reading top-up evaluates the missing readings on it), or None."""
        if self.force:
            return None
        for name in ('result.json', 'result.prev.json'):
            path = osp.join(task.dir, name)
            if osp.isfile(path):
                with open(path) as f:
                    ckpt = json.load(f).get('checkpoint')
                if ckpt and osp.isfile(ckpt):
                    return path
        return None

    def _write_task(self, task: Task) -> str:
        os.makedirs(task.dir, exist_ok=True)
        load_from = None
        if task.parent is not None:
            parent = json.load(open(task.parent.result_path))
            load_from = parent['checkpoint']
        previous = self._previous(task)
        if previous is not None:      # top-up: read the stage's own checkpoint, no training
            with open(previous) as f:
                prev = json.load(f)
            load_from = prev['checkpoint']
            if previous == task.result_path:   # the runner waits for a new result.json
                previous = osp.join(task.dir, 'result.prev.json')
                os.replace(task.result_path, previous)
        if self.quick and self._indices is None:
            self._indices = quick_indices(self.spec)
        cfg = build_stage_config(task.stage, self.spec, self.schedule, task.seed,
                                 osp.abspath(task.dir), load_from,
                                 self._indices if self.quick else None, self.device,
                                 self.amp, self.feature_cache, self.channels_last,
                                 self.compile)
        cfg_path = osp.join(task.dir, 'config.py')
        cfg.dump(cfg_path)
        names = task.readings or list(task.stage.readings)[:1]
        if previous is not None:
            names = [k for k in names if k not in prev.get('readings', {})]
        readings = {k: resolve(task.stage.readings[k], self.spec) for k in names}
        path = osp.join(task.dir, 'task.json')
        with open(path, 'w') as f:
            json.dump(dict(stage=task.stage.key, seed=task.seed,
                           train=task.stage.train and previous is None,
                           config=osp.abspath(cfg_path), readings=readings,
                           previous=previous and osp.abspath(previous),
                           resume=not self.force,
                           result=osp.abspath(task.result_path)), f, indent=1)
        return path

    def _slot_process(self, cores: Sequence[int]) -> subprocess.Popen:
        """The long-lived worker of a slot (imports once), pinned to ``cores``."""
        key = tuple(cores)
        proc = self._slots.get(key)
        if proc is not None and proc.poll() is None:
            return proc
        env = dict(os.environ, OMP_NUM_THREADS=str(len(cores)), MKL_NUM_THREADS=str(len(cores)))
        env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
        if self.device == 'cpu':
            env['CUDA_VISIBLE_DEVICES'] = ''
        os.makedirs(self.root, exist_ok=True)
        logf = open(osp.join(self.root, f'worker-cores{"-".join(map(str, cores))}.log'), 'a')
        proc = subprocess.Popen(
            [sys.executable, '-m', 'lt_plugins.benchmark.worker', '--serve'], cwd=REPO,
            env=env, stdin=subprocess.PIPE, stdout=logf, stderr=subprocess.STDOUT, text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, set(cores)))
        self._slots[key] = proc
        return proc

    def _launch(self, task: Task, cores: Sequence[int]) -> None:
        path = self._write_task(task)
        for name in ('progress.json', 'result.json', 'error.txt'):
            if osp.exists(osp.join(task.dir, name)):
                os.remove(osp.join(task.dir, name))
        task.proc = self._slot_process(cores)
        task.proc.stdin.write(osp.abspath(path) + '\n')
        task.proc.stdin.flush()
        task.cores, task.started = cores, time.time()
        self.log(f'[start] {task.label} on cores {list(cores)} (arms: {", ".join(task.arms)})')

    def _poll(self, task: Task) -> Optional[bool]:
        """True: finished, False: failed, None: still running."""
        if osp.isfile(task.result_path):
            return True
        if osp.isfile(osp.join(task.dir, 'error.txt')) or task.proc.poll() is not None:
            return False
        return None

    def close(self) -> None:
        """End the slot workers (their stdin closes; each exits after its task)."""
        for proc in self._slots.values():
            if proc.poll() is None:
                proc.stdin.close()
                proc.wait()
        self._slots.clear()

    def run(self, tasks: List[Task]) -> Dict[str, float]:
        """Run every task not done yet; returns wall time and counts."""
        t0 = time.time()
        todo = []
        for task in tasks:
            if self._complete(task) and not self.force:
                self.log(f'[skip] {task.label}: {task.result_path} exists (--force re-runs)')
            else:
                todo.append(task)
        if self.jobs == 0:
            return self._run_inline(tasks, todo, t0)
        free = core_groups(self.jobs)
        running: List[Task] = []
        done_keys = {id(t) for t in tasks if t not in todo}
        total, finished = len(todo), 0
        # ready stages with the most work hanging on them first (a shared stage 1 before
        # the leaves), so the last minutes are not one long chain on one core
        weight = {id(t): 0 for t in tasks}
        for task in tasks:
            node = task
            while node is not None:
                weight[id(node)] += 1
                node = node.parent
        while todo or running:
            for task in list(running):
                state = self._poll(task)
                if state is None:
                    self._print_progress(task, finished, total, t0)
                    continue
                running.remove(task)
                free.append(list(task.cores))
                finished += 1
                if state:
                    done_keys.add(id(task))
                    self.log(f'[done {finished}/{total}] {task.label} in '
                             f'{time.time() - task.started:.0f} s')
                else:
                    task.failed = True
                    self.log(f'[FAILED {finished}/{total}] {task.label}; see '
                             f'{osp.join(task.dir, "error.txt")}')
            for task in list(todo):   # children of a failed stage cannot run
                if task.parent is not None and task.parent.failed:
                    task.failed = True
                    todo.remove(task)
                    finished += 1
                    self.log(f'[FAILED {finished}/{total}] {task.label}: parent failed')
            for task in sorted(todo, key=lambda t: -weight[id(t)]):
                if not free:
                    break
                if task.parent is None or id(task.parent) in done_keys:
                    todo.remove(task)
                    running.append(task)
                    self._launch(task, free.pop(0))
            time.sleep(0.5)
        self.close()
        return dict(wall_s=time.time() - t0, ran=total,
                    failed=sum(t.failed for t in tasks))

    def _run_inline(self, tasks: List[Task], todo: List[Task], t0: float) -> Dict[str, float]:
        from .worker import run_task
        if self.device == 'cpu':
            os.environ['CUDA_VISIBLE_DEVICES'] = ''
        for i, task in enumerate(todo):
            if task.parent is not None and (task.parent.failed
                                            or not osp.isfile(task.parent.result_path)):
                task.failed = True
                self.log(f'[FAILED {i + 1}/{len(todo)}] {task.label}: parent failed')
                continue
            start = time.time()
            self.log(f'[start] {task.label} in this process (arms: {", ".join(task.arms)})')
            with open(self._write_task(task)) as f:
                run_task(json.load(f))
            self.log(f'[done {i + 1}/{len(todo)}] {task.label} in {time.time() - start:.0f} s')
        return dict(wall_s=time.time() - t0, ran=len(todo),
                    failed=sum(t.failed for t in tasks))

    def _print_progress(self, task: Task, finished: int, total: int, t0: float) -> None:
        path = osp.join(task.dir, 'progress.json')
        try:
            with open(path) as f:
                prog = json.load(f)
        except (OSError, ValueError):
            return
        line = (f'[run] {task.label} ({", ".join(task.arms)}) epoch {prog["epoch"]}/'
                f'{prog["max_epochs"]}, ETA {prog["eta_s"]:.0f} s; {finished}/{total} '
                f'stages done, {time.time() - t0:.0f} s elapsed')
        if line.split(';')[0] != task.last_progress:
            task.last_progress = line.split(';')[0]
            self.log(line)


def load_results(tasks: List[Task]) -> Dict[tuple, dict]:
    """``{(seed, stage key): result}`` of the tasks that finished."""
    out = {}
    for task in tasks:
        if osp.isfile(task.result_path):
            with open(task.result_path) as f:
                out[(task.seed, task.stage.key)] = json.load(f)
    return out


__all__ = ['BenchmarkRunner', 'Task', 'plan', 'load_results', 'checkpoint_of', 'run_root',
           'core_groups', 'quick_indices']
