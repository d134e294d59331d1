"""Kill-and-resume soak: a multi-process run killed at random points ends bit-equal to an
uninterrupted one.

    python tools/soak_resume.py [--seed N] [--kills 5] [--procs 2] [--epochs 6]
                                [--work-dir work_dirs/soak_resume] [--keep]

Trains DigitsLT (CE, random crops and flips in 2 persistent data workers per rank, Mixup,
iteration checkpoints every 4 iterations, ``max_keep_ckpts=2``) with ``tools/dist_train.sh``
twice: once straight, once killed (SIGKILL, no clean-up) at ``--kills`` points drawn from
``--seed`` (printed; a fresh one unless given) and relaunched with ``--resume`` after each.
One kill hits rank 0 while it writes a checkpoint (half the file on disk), the others a
random rank before a random iteration. The final checkpoints must hold bit-equal weights,
optimizer and scheduler state, random state and logged training losses. Exit status 0 on
success, 1 on a difference. Imported as ``soak_resume`` by the soak config in the training
processes (``LT_SOAK_CHILD=1``) it registers the test-only kill hook, nothing else.
"""
import argparse
import os
import os.path as osp
import random
import shutil
import signal
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
KILL_ENV = 'LT_SOAK_KILL'  # "iter:<N>:<rank>" or "write:<N>" (checkpoint iter_<N>.pth)
TRAIN_IMAGES, BATCH = 481, 32  # DigitsLT's training split; the config's batch (drop_last)
CKPT_INTERVAL = 4


def iters_per_epoch(procs: int) -> int:
    """Iterations per epoch: each rank gets ceil(481 / procs) indices, in full batches."""
    return -(-TRAIN_IMAGES // procs) // BATCH

CONFIG = """_base_ = ['{repo}/configs/baselines/ce_resnet32-cifar_1xb32_digits-lt.py']
custom_imports = dict(imports=['lt_plugins', 'soak_resume'], allow_failed_imports=False)
model = dict(train_cfg=dict(augments=dict(type='Mixup', alpha=1.0)))
train_dataloader = dict(num_workers=2, persistent_workers=True, dataset=dict(pipeline=[
    dict(type='RandomCrop', crop_size=8, padding=1),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs')]))
train_cfg = dict(max_epochs={epochs}, val_interval=1)
custom_hooks = [dict(type='ClassCountsHook'), dict(type='SoakKillHook')]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval={interval},
                    max_keep_ckpts=2, save_last=True))
"""


# -- the kill hook (imported inside the training processes) -----------------------------------
def _install_kill_hook() -> None:
    from mmengine.dist import get_rank
    from mmengine.hooks import Hook
    from mmpretrain.registry import HOOKS

    spec = os.environ.get(KILL_ENV, '')

    @HOOKS.register_module(force=True)
    class SoakKillHook(Hook):
        """SIGKILL this process before iteration N on the chosen rank (``iter:N:rank``)."""

        priority = 'HIGHEST'

        def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
            kind, *rest = spec.split(':') if spec else ('', )
            if kind == 'iter' and runner.iter == int(rest[0]) and get_rank() == int(rest[1]):
                os.kill(os.getpid(), signal.SIGKILL)

    if spec.startswith('write:'):  # die while rank 0 writes iter_N.pth: half of it on disk
        from lt_plugins.engine import atomic_checkpoint
        target = f'iter_{int(spec.split(":")[1])}.pth'
        real = atomic_checkpoint.atomic_write_bytes

        def dying_write(data: bytes, path: str) -> None:
            if osp.basename(path) != target:
                return real(data, path)
            with open(atomic_checkpoint.tmp_path_for(path), 'wb') as f:
                f.write(data[:len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

        atomic_checkpoint.atomic_write_bytes = dying_write


if __name__ != '__main__' and os.environ.get('LT_SOAK_CHILD') == '1':  # training processes
    _install_kill_hook()


# -- the driver ---------------------------------------------------------------------------------
def plan_kills(seed: int, kills: int, total_iters: int, procs: int = 2):
    """``kills`` kill points in the order they happen: once ``('write', N)`` (rank 0 dies
    writing iter_N.pth, at the end of iteration N - 1), otherwise ``('iter', N, rank)``
    (``rank`` dies before iteration N)."""
    rng = random.Random(seed)
    write_at = rng.choice(list(range(CKPT_INTERVAL, total_iters, CKPT_INTERVAL)))
    others = rng.sample(range(1, total_iters), kills - 1)
    plan = [('iter', i, rng.randrange(procs)) for i in others] + [('write', write_at)]
    return sorted(plan, key=lambda p: p[1] - 0.5 if p[0] == 'write' else p[1])


def launch(config: str, work: str, procs: int, kill=None, resume=True, log=None):
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(_free_port()),
               PATH=osp.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''),
               PYTHONPATH=osp.join(REPO, 'tools') + os.pathsep + os.environ.get('PYTHONPATH',
                                                                                 ''))
    env['LT_SOAK_CHILD'] = '1'
    env.pop(KILL_ENV, None)
    if kill is not None:
        env[KILL_ENV] = ':'.join(str(p) for p in kill)
    cmd = ['bash', 'tools/dist_train.sh', config, str(procs), '--work-dir', work]
    if resume:
        cmd.append('--resume')
    start = time.time()
    with open(log, 'a') as out:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=1800)
    return proc.returncode, time.time() - start


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def compare(reference: str, actual: str) -> list:
    """Differences between two final checkpoints (empty when bit-equal)."""
    import torch
    a = torch.load(reference, map_location='cpu', weights_only=False)
    b = torch.load(actual, map_location='cpu', weights_only=False)
    problems = []

    def walk(x, y, where):
        if isinstance(x, dict):
            if not isinstance(y, dict) or x.keys() != y.keys():
                problems.append(f'{where}: keys differ')
                return
            for k in x:
                walk(x[k], y[k], f'{where}.{k}')
        elif isinstance(x, (list, tuple)):
            if not isinstance(y, (list, tuple)) or len(x) != len(y):
                problems.append(f'{where}: lengths differ')
                return
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f'{where}[{i}]')
        elif torch.is_tensor(x):
            if not (torch.is_tensor(y) and x.shape == y.shape and x.dtype == y.dtype
                    and torch.equal(x, y)):
                problems.append(f'{where}: tensors differ')
        elif hasattr(x, 'shape'):  # numpy
            import numpy as np
            if not np.array_equal(x, y):
                problems.append(f'{where}: arrays differ')
        elif x != y:
            problems.append(f'{where}: {x!r} != {y!r}')

    for key in ('state_dict', 'optimizer', 'param_schedulers', 'lt_random_state'):
        walk(a.get(key), b.get(key), key)
    for key in ('epoch', 'iter'):
        walk(a['meta'].get(key), b['meta'].get(key), f'meta.{key}')
    hub_a, hub_b = a['message_hub']['log_scalars'], b['message_hub']['log_scalars']
    for key in sorted(hub_a):
        if key.startswith('train/') and 'time' not in key:
            walk(hub_a[key].data[0], hub_b[key].data[0], f'logged {key}')
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seed', type=int, default=None, help='seed of the kill points')
    parser.add_argument('--kills', type=int, default=5)
    parser.add_argument('--procs', type=int, default=2)
    parser.add_argument('--epochs', type=int, default=6)
    parser.add_argument('--work-dir', default=osp.join(REPO, 'work_dirs', 'soak_resume'))
    parser.add_argument('--keep', action='store_true', help='keep the work dir')
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), 'little')
    total = args.epochs * iters_per_epoch(args.procs)
    plan = plan_kills(seed, args.kills, total, args.procs)
    print(f'soak_resume: seed {seed} (rerun with --seed {seed}); {args.procs} processes, '
          f'{total} iterations, checkpoints every {CKPT_INTERVAL}; kills: '
          + ', '.join(f'{p[0]} {p[1]}' + (f' (rank {p[2]})' if p[0] == 'iter' else '')
                      for p in plan), flush=True)
    work = osp.abspath(args.work_dir)
    if osp.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    config = osp.join(work, 'soak_config.py')
    with open(config, 'w') as f:
        f.write(CONFIG.format(repo=REPO, epochs=args.epochs, interval=CKPT_INTERVAL))
    log = osp.join(work, 'soak.log')
    straight, killed = osp.join(work, 'straight'), osp.join(work, 'killed')
    code, seconds = launch(config, straight, args.procs, resume=False, log=log)
    print(f'  straight run: exit {code}, {seconds:.0f} s', flush=True)
    if code != 0:
        print(f'soak_resume: the straight run failed, see {log}')
        return 1
    for point in plan:
        code, seconds = launch(config, killed, args.procs, kill=point, log=log)
        last = ''
        if osp.exists(osp.join(killed, 'last_checkpoint')):
            last = osp.basename(open(osp.join(killed, 'last_checkpoint')).read().strip())
        leftovers = [n for n in os.listdir(killed) if '.tmp-' in n]
        print(f'  killed at {point}: exit {code}, {seconds:.0f} s; last_checkpoint {last}'
              + (f', unfinished write {leftovers}' if leftovers else ''), flush=True)
        if code == 0:
            print('soak_resume: the run was not killed (kill point passed?)')
            return 1
    code, seconds = launch(config, killed, args.procs, log=log)
    print(f'  final resume: exit {code}, {seconds:.0f} s', flush=True)
    if code != 0:
        print(f'soak_resume: the final resume failed, see {log}')
        return 1
    name = f'iter_{total}.pth'
    problems = compare(osp.join(straight, name), osp.join(killed, name))
    if problems:
        print(f'soak_resume: FAIL (seed {seed}): {len(problems)} differences')
        for p in problems[:20]:
            print('   ', p)
        return 1
    print(f'soak_resume: PASS (seed {seed}): after {len(plan)} kills the final {name} is '
          'bit-equal to the straight run (weights, optimizer, schedulers, random state, '
          'logged losses)')
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == '__main__':
    sys.exit(main())
