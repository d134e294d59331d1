"""Training and inference speed of every method on the fast path's settings, as ratios.

For each method (the model of its shipped CIFAR-10-LT IR100 CPU config, ResNet-32) and each
setting -- ``fp32-nchw`` (the old default), ``fp32-cl`` (channels-last), ``bf16-cl``
(bfloat16 autocast + channels-last) and, with ``--compile``, the same with the backbone
compiled -- one full training step through mmengine's ``model.train_step`` (data
preprocessing, forward, memories / generators, loss, backward, SGD update) and one inference
step (``mode='predict'``) on the same batch of 128 random 32x32 images with CIFAR-10-LT IR100
labels. Steps of all settings are interleaved round by round so that load drift hits all of
them alike; the median is reported as images per second and as a ratio to ``fp32-nchw``.

Times are process CPU time by default (``--clock cpu``: on a shared machine wall time mostly
measures the other jobs; single-threaded runs only) or wall time (``--clock wall``).

Settings that need native bfloat16 are skipped on a CPU without it (emulated bfloat16 is
several times slower than float32; ``--emulated-bf16`` times it anyway). The run also
reports the achieved GFLOP/s of CE's training step (FLOPs counted by
``torch.utils.flop_counter``) against this core's measured peak: a large float32 and
bfloat16 matmul timed in the same run.

    OMP_NUM_THREADS=1 taskset -c 1 python tools/benchmark/bench_speed.py [--methods ce mbj]
        [--compile] [--rounds 5] [--out work_dirs/bench_speed.json]
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import lt_plugins  # noqa: E402,F401
from lt_plugins.engine.fast_path import (compile_backbone,  # noqa: E402
                                         convert_to_channels_last, cpu_bfloat16_support)

C = 'configs/{}_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py'
METHODS = {
    'ce': C.format('baselines/ce'),
    'crt': C.format('baselines/crt'),
    'mbj': C.format('mbj/mbj'),
    'iem-rsa': C.format('iem/iem'),
    'stg-stage2': C.format('stg/stg-stage2'),
    'stg-stage3': C.format('stg/stg-stage3'),
    'afa-lbls': C.format('afa/afa'),
    'ldam-drw': C.format('baselines/ldam-drw'),
    'ride': C.format('ride/ride'),
}
CIFAR10_LT_IR100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    p.add_argument('--compile', action='store_true',
                   help='add the compiled settings (compile time reported per model)')
    p.add_argument('--emulated-bf16', action='store_true',
                   help='time bfloat16 even where the CPU emulates it')
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--warmup', type=int, default=3,
                   help='untimed steps per model first (memories fill, compile runs)')
    p.add_argument('--clock', choices=['cpu', 'wall'], default='cpu')
    p.add_argument('--out', default=osp.join(REPO, 'work_dirs', 'bench_speed.json'))
    return p.parse_args(argv)


def settings(args) -> list:
    names = ['fp32-nchw', 'fp32-cl']
    if cpu_bfloat16_support() or args.emulated_bf16:
        names.append('bf16-cl')
    if args.compile:
        names += [n + '-compiled' for n in names if n != 'fp32-nchw']
    return names


def batch(n: int):
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(0)
    counts = torch.tensor(CIFAR10_LT_IR100, dtype=torch.float)
    labels = torch.multinomial(counts, n, replacement=True, generator=gen)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
    samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(int(y))
               for i, y in enumerate(labels)]        # sample_idx: STG's smoothing reads it
    return dict(inputs=list(images), data_samples=samples)


def build(method: str, setting: str):
    """The model of ``method`` and its optimizer wrapper, laid out / cast for ``setting``."""
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper
    from mmpretrain.registry import MODELS

    from lt_plugins.engine.optimizers import AutocastOptimWrapper
    cfg = Config.fromfile(osp.join(REPO, METHODS[method]))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    counts = torch.tensor(CIFAR10_LT_IR100)
    for module in model.modules():
        if hasattr(module, 'set_class_counts'):
            module.set_class_counts(counts)
        if hasattr(module, 'set_drw_enabled'):
            module.set_drw_enabled(True)       # LDAM-DRW's second phase: the weighted loss
    if hasattr(model, '_backbone_loaded'):
        model._backbone_loaded = True          # frozen-backbone stages: weights as built
    for module in model.modules():             # STG stage 3: a generator 'trained' as built
        if isinstance(getattr(module, 'trained_iters', None), torch.Tensor):
            module.trained_iters.fill_(1)
            proto_count = getattr(module, 'proto_count', None)
            if isinstance(proto_count, torch.Tensor):    # every class seen once
                proto_count.fill_(1)
                module.proto_sum.copy_(torch.randn_like(module.proto_sum))
    model.train()
    if '-cl' in setting:
        convert_to_channels_last(model)
    compile_s = 0.0
    if setting.endswith('-compiled'):
        start = time.perf_counter()
        compile_backbone(model, {})
        compile_s = time.perf_counter() - start   # lazy: the warm-up steps pay the rest
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    wrapper = (AutocastOptimWrapper(optimizer=optimizer) if setting.startswith('bf16')
               else OptimWrapper(optimizer=optimizer))
    return model, wrapper, compile_s


def clock(kind: str):
    return time.process_time if kind == 'cpu' else time.perf_counter


def train_step(model, wrapper, data):
    model.train()
    model.train_step(copy.copy(data), wrapper)


def infer_step(model, wrapper, data):
    model.eval()
    with torch.no_grad():
        if isinstance(wrapper, lt_plugins.engine.optimizers.AutocastOptimWrapper):
            with torch.autocast('cpu', dtype=torch.bfloat16):
                model.test_step(copy.copy(data))
        else:
            model.test_step(copy.copy(data))


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a ``size`` x ``size`` matmul in ``dtype`` (best of ``repeats``)."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def step_flops(model, wrapper, data) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(model, wrapper, data)
    return counter.get_total_flops()


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    data = batch(args.batch)
    names = settings(args)
    tick = clock(args.clock)
    runs, compile_s, errors = {}, {}, {}
    for method in args.methods:
        for setting in names:
            try:
                model, wrapper, c_s = build(method, setting)
                start = time.perf_counter()
                for _ in range(args.warmup):
                    train_step(model, wrapper, data)
                infer_step(model, wrapper, data)
                if setting.endswith('-compiled'):
                    compile_s[f'{method}/{setting}'] = c_s + time.perf_counter() - start
                runs[(method, setting)] = (model, wrapper, dict(train=[], infer=[]))
            except Exception as exc:  # a method that cannot run a setting is reported
                errors[f'{method}/{setting}'] = f'{type(exc).__name__}: {exc}'[:300]
    for _ in range(args.rounds):
        for (method, setting), (model, wrapper, times) in runs.items():
            for kind, fn in (('train', train_step), ('infer', infer_step)):
                start = tick()
                fn(model, wrapper, data)
                times[kind].append(tick() - start)
    rows = {}
    for method in args.methods:
        base = runs.get((method, 'fp32-nchw'))
        for setting in names:
            if (method, setting) not in runs:
                continue
            times = runs[(method, setting)][2]
            train, infer = statistics.median(times['train']), statistics.median(times['infer'])
            row = dict(train_img_s=args.batch / train, infer_img_s=args.batch / infer,
                       train_step_s=train, infer_step_s=infer)
            if base is not None:
                row['train_speedup'] = statistics.median(base[2]['train']) / train
                row['infer_speedup'] = statistics.median(base[2]['infer']) / infer
            rows[f'{method}/{setting}'] = row
    flops = {}
    if ('ce', 'fp32-nchw') in runs:
        model, wrapper, _ = runs[('ce', 'fp32-nchw')]
        flops['ce_train_step_gflop'] = step_flops(model, wrapper, data) / 1e9
        flops['peak_fp32_gflop_s'] = matmul_peak(torch.float32)
        flops['peak_bf16_gflop_s'] = matmul_peak(torch.bfloat16)
        for setting in names:
            if f'ce/{setting}' in rows:
                flops[f'ce/{setting}_gflop_s'] = (flops['ce_train_step_gflop'] /
                                                   rows[f'ce/{setting}']['train_step_s'])
    report(args, names, rows, flops, compile_s, errors)
    out = dict(args=vars(args), settings=names, rows=rows, flops=flops, compile_s=compile_s,
               errors=errors, torch=torch.__version__, machine=platform.processor() or
               platform.machine(), bf16_flag=cpu_bfloat16_support(),
               cpu_capability=torch.backends.cpu.get_cpu_capability())
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=1)
    print(f'wrote {args.out}')
    return out


def report(args, names, rows, flops, compile_s, errors) -> None:
    print(f'batch {args.batch} x 32 px, 1 thread, {args.clock} clock, median of '
          f'{args.rounds}; native bfloat16: {cpu_bfloat16_support() or "no"} '
          f'(ATen {torch.backends.cpu.get_cpu_capability()})')
    print('| method | ' + ' | '.join(f'{n} train img/s (x)' for n in names) + ' | '
          + ' | '.join(f'{n} infer img/s (x)' for n in names) + ' |')
    print('|---' * (1 + 2 * len(names)) + '|')
    for method in args.methods:
        cells = []
        for kind in ('train', 'infer'):
            for n in names:
                r = rows.get(f'{method}/{n}')
                cells.append('-' if r is None else
                             f'{r[kind + "_img_s"]:.0f} ({r.get(kind + "_speedup", 0):.2f})')
        print(f'| {method} | ' + ' | '.join(cells) + ' |')
    if flops:
        line = ', '.join(f'{n} {flops[f"ce/{n}_gflop_s"]:.1f}' for n in names
                         if f'ce/{n}_gflop_s' in flops)
        print(f'CE training step: {flops["ce_train_step_gflop"]:.1f} GFLOP; achieved GFLOP/s: '
              f'{line}; this core\'s matmul peak: fp32 {flops["peak_fp32_gflop_s"]:.1f}, '
              f'bf16 {flops["peak_bf16_gflop_s"]:.1f} GFLOP/s')
    for key, value in compile_s.items():
        print(f'compile (incl. warm-up steps) {key}: {value:.0f} s')
    for key, value in errors.items():
        print(f'not timed {key}: {value}')


if __name__ == '__main__':
    main()
