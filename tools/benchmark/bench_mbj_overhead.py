"""Training-step overhead of MBJ (MBJClsHead + feature memory) over the plain CE head.

Both models are the same ImageClassifier (timm ``resnet32_cifar`` by default, GAP neck), the
same weights, the same batch (random 32x32 images, CIFAR-10-LT IR100 label profile) and the
same SGD step; only the head differs (``LinearClsHead`` vs ``MBJClsHead`` with its memory on
and full). Steps of the two models are interleaved in rounds so that machine-load drift hits
both equally; the ratio of the median step times is reported. Run pinned for a stable number:

    OMP_NUM_THREADS=1 taskset -c 1 python tools/benchmark/bench_mbj_overhead.py

Prints a table and writes ``<work-dir>/bench_mbj_overhead.json``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import time

import torch


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model-name', default='resnet32_cifar', help='timm backbone name')
    p.add_argument('--in-channels', type=int, default=64, help='feature width of the backbone')
    p.add_argument('--num-classes', type=int, default=10)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--img-size', type=int, default=32)
    p.add_argument('--rounds', type=int, default=8)
    p.add_argument('--steps-per-round', type=int, default=3)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--head-reps', type=int, default=200)
    p.add_argument('--variant', default='F', help="MBJClsHead variant ('F', 'W', ...)")
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--work-dir', default='work_dirs/bench_mbj_overhead')
    return p.parse_args()


def build(args, head_cfg):
    from mmpretrain.registry import MODELS
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='TIMMBackbone', model_name=args.model_name),
        neck=dict(type='GlobalAveragePooling'),
        head=head_cfg))


def lt_counts(num_classes: int, n_max: int = 5000, ir: float = 100.0):
    return [int(n_max * ir ** (-i / (num_classes - 1))) for i in range(num_classes)]


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    import lt_plugins  # noqa: F401  (registration)
    from mmengine.registry import init_default_scope
    from mmpretrain.structures import DataSample
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    C = args.num_classes
    counts = lt_counts(C)
    ce = build(args, dict(type='LinearClsHead', num_classes=C, in_channels=args.in_channels))
    mbj = build(args, dict(type='MBJClsHead', num_classes=C, in_channels=args.in_channels,
                           variant=args.variant,
                           memory=dict(type='RebalancedFIFOMemory', beta=1.5,
                                       class_counts=counts)))
    mbj.load_state_dict(ce.state_dict(), strict=False)  # same backbone and classifier
    device = torch.device(args.device)
    models = dict(ce=ce.to(device).train(), mbj=mbj.to(device).train())
    optims = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
              for k, m in models.items()}

    gen = torch.Generator().manual_seed(0)
    probs = torch.tensor(counts, dtype=torch.float) / sum(counts)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=gen).to(device)
    labels = torch.multinomial(probs, args.batch_size, replacement=True, generator=gen)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]

    def step(name):
        model, opt = models[name], optims[name]
        opt.zero_grad(set_to_none=True)
        losses = model(x, samples, mode='loss')
        sum(losses.values()).backward()
        opt.step()
        if device.type == 'cuda':
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step('ce')
        step('mbj')
    # fill the memory so the measured steps read a full bank
    bank = mbj.head.memory
    while bank is not None and bank.fill_ratio() < 1.0:
        step('mbj')
    times = dict(ce=[], mbj=[])
    cpu_times = dict(ce=[], mbj=[])  # process CPU time: robust to time-slicing on a busy core
    for r in range(args.rounds):
        order = ('ce', 'mbj') if r % 2 == 0 else ('mbj', 'ce')
        for name in order:
            for _ in range(args.steps_per_round):
                t0, c0 = time.perf_counter(), time.process_time()
                step(name)
                times[name].append(time.perf_counter() - t0)
                cpu_times[name].append(time.process_time() - c0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med['mbj'] / med['ce']
    cpu_med = {k: statistics.median(v) for k, v in cpu_times.items()}
    cpu_ratio = cpu_med['mbj'] / cpu_med['ce']

    # Head-only cost (loss forward + backward on fixed features), interleaved: the absolute
    # extra time of MBJ per step, insensitive to machine-load drift of whole steps.
    feats = models['ce'].extract_feat(x)[-1].detach()
    head_times = dict(ce=[], mbj=[])
    for r in range(args.head_reps):
        for name in (('ce', 'mbj') if r % 2 == 0 else ('mbj', 'ce')):
            f = feats.clone().requires_grad_(True)
            t0 = time.perf_counter()
            losses = models[name].head.loss((f, ), samples)
            sum(losses.values()).backward()
            if device.type == 'cuda':
                torch.cuda.synchronize()
            head_times[name].append(time.perf_counter() - t0)
    head_med = {k: statistics.median(v) for k, v in head_times.items()}
    extra = head_med['mbj'] - head_med['ce']
    result = dict(
        model=args.model_name, batch_size=args.batch_size, img_size=args.img_size,
        num_classes=C, variant=args.variant, device=args.device, threads=args.threads,
        memory_size=None if bank is None else bank.size,
        steps_per_model=len(times['ce']), median_step_s=med,
        mean_step_s={k: statistics.mean(v) for k, v in times.items()},
        ratio_mbj_over_ce=ratio, target=1.05,
        median_step_cpu_s=cpu_med, ratio_mbj_over_ce_cpu_time=cpu_ratio,
        head_only_median_s=head_med, head_extra_s=extra,
        ratio_from_head_extra=(med['ce'] + extra) / med['ce'],
        machine=platform.processor() or platform.machine(),
        torch=torch.__version__)
    print(f'{"head":<6}{"median step (s)":>18}{"mean step (s)":>16}{"median CPU (s)":>16}')
    for k in ('ce', 'mbj'):
        print(f'{k:<6}{med[k]:>18.4f}{result["mean_step_s"][k]:>16.4f}{cpu_med[k]:>16.4f}')
    print(f'ratio MBJ / CE = {ratio:.4f} wall, {cpu_ratio:.4f} CPU time (target <= 1.05), '
          f'{len(times["ce"])} steps each, '
          f'{args.model_name}, batch {args.batch_size}, {args.img_size}x{args.img_size}, '
          f'{args.device}, {args.threads} thread(s)')
    print(f'head only: CE {head_med["ce"] * 1e3:.3f} ms, MBJ {head_med["mbj"] * 1e3:.3f} ms '
          f'-> extra {extra * 1e3:.3f} ms per step = ratio '
          f'{result["ratio_from_head_extra"]:.4f} of the CE step')
    os.makedirs(args.work_dir, exist_ok=True)
    out = osp.join(args.work_dir, 'bench_mbj_overhead.json')
    with open(out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
