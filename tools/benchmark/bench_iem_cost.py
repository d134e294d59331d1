"""Cost of IEM + RSA over the plain CE model, and of the batched memory read vs alternatives.

1. Training step: ``ImageClassifier`` with timm ``resnet32_cifar`` + GAP + ``LinearClsHead``
   (CE) vs the same backbone + ``RSANeck`` + ``IEMHead`` with both memories full (C = 100,
   capacity 512 per class by default), batch 128 of 32x32 images, the same SGD step (the
   memories in an Adam group of ``HybridSGDAdam``, the memory step of ``IEMMemoryHook``
   included). Steps of the two models are interleaved in rounds; the ratio of median step
   times is reported (target <= 1.5).
2. Inference: ``val_step`` throughput of both models (IEM reads every class's memories),
   and of IEM with the ``-cpu-knn`` configs' reading (the global memory alone, ``'keys'``).
3. Memory bytes (keys, values, ages, validity; with Adam's two moment copies).
4. Reads: the batched read of ``EpisodicMemory`` against a straightforward per-class Python
   loop (``torch.cdist`` + ``topk`` per class) and faiss-cpu exact flat search
   (``IndexFlatL2``, one index per class), for the training read (positive + hard negative,
   every query addresses one class) and the inference read (every query, every class).

Run pinned for a stable number::

    OMP_NUM_THREADS=1 taskset -c 1 python tools/benchmark/bench_iem_cost.py

Prints a table and writes ``<work-dir>/bench_iem_cost.json``.
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
    p.add_argument('--num-classes', type=int, default=100)
    p.add_argument('--capacity', type=int, default=512, help='slots per class (both memories)')
    p.add_argument('--num-neighbors', type=int, default=50)
    p.add_argument('--local-regions', type=int, default=16,
                   help='most-attended regions per image in the local memory (the configs '
                   'use 16); 0 = all regions')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--img-size', type=int, default=32)
    p.add_argument('--rounds', type=int, default=4)
    p.add_argument('--steps-per-round', type=int, default=2)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--infer-batches', type=int, default=2)
    p.add_argument('--read-queries', type=int, default=256,
                   help='queries of the read micro-benchmark')
    p.add_argument('--skip-faiss', action='store_true')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--work-dir', default='work_dirs/bench_iem_cost')
    return p.parse_args()


def build(args, neck, head):
    from mmpretrain.registry import MODELS
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='TIMMBackbone', model_name=args.model_name),
        neck=neck, head=head))


def lt_counts(num_classes: int, n_max: int = 500, ir: float = 100.0):
    return [int(n_max * ir ** (-i / (num_classes - 1))) for i in range(num_classes)]


def fill(memory, gen):
    """Fill every slot with feature-like keys (non-negative, unit scale) and random values."""
    with torch.no_grad():
        memory.keys.copy_(torch.rand(memory.keys.shape, generator=gen))
        memory.values.copy_(torch.rand(memory.values.shape, generator=gen))
    memory.valid.fill_(True)
    memory.ages.random_(0, 1000, generator=gen)


def timed(fn, repeat=3):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def read_benchmarks(args, memory, gen):
    """Batched read vs per-class loop vs faiss flat search; returns seconds per call."""
    num_q = args.read_queries  # region queries (batch x kept regions at training)
    dim, n, num_classes = memory.dim, memory.num_neighbors, memory.num_classes
    queries = torch.rand(num_q, dim, generator=gen)
    classes = torch.randint(0, num_classes, (num_q, ), generator=gen)
    keys, values = memory.keys.detach(), memory.values.detach()
    memory.eval()

    def batched_addressed():
        with torch.no_grad():
            memory.read(queries, classes)

    def loop_addressed():
        out = torch.empty(num_q)
        for c in classes.unique().tolist():          # the straightforward loop over classes
            sel = (classes == c).nonzero().squeeze(1)
            d = torch.cdist(queries[sel], keys[c]).pow(2)
            top, idx = d.topk(n, dim=1, largest=False)
            s = 1.0 / (top + memory.delta)
            out[sel] = (s * values[c][idx]).sum(1) / s.sum(1)
        return out

    def batched_all():
        memory.read_all(queries)

    def loop_all():
        out = torch.empty(num_q, num_classes)
        for c in range(num_classes):
            d = torch.cdist(queries, keys[c]).pow(2)
            top, idx = d.topk(n, dim=1, largest=False)
            s = 1.0 / (top + memory.delta)
            out[:, c] = (s * values[c][idx]).sum(1) / s.sum(1)
        return out

    def check(got, ref, what):
        # fp32 round-off (cdist vs addmm) can swap slots at the top-n boundary: allow a few
        # elements to differ, not a systematic error
        close = torch.isclose(torch.as_tensor(got), ref, rtol=1e-2, atol=1e-2)
        if close.float().mean() < 0.999:
            raise AssertionError(f'{what}: {int((~close).sum())} of {close.numel()} reads '
                                 'differ from the batched read')

    with torch.no_grad():
        ref = memory.read(queries, classes)
        check(loop_addressed(), ref, 'per-class loop (addressed)')
        check(loop_all(), memory.read_all(queries), 'per-class loop (all classes)')
    result = dict(queries=num_q, batched_addressed_s=timed(batched_addressed),
                  loop_addressed_s=timed(loop_addressed), batched_all_s=timed(batched_all),
                  loop_all_s=timed(loop_all))
    if not args.skip_faiss:
        try:
            import faiss
            import numpy as np
            faiss.omp_set_num_threads(args.threads)
            indexes = []
            for c in range(num_classes):
                index = faiss.IndexFlatL2(dim)
                index.add(np.ascontiguousarray(keys[c].numpy(), dtype=np.float32))
                indexes.append(index)
            q_np = np.ascontiguousarray(queries.numpy(), dtype=np.float32)
            vals_np = values.numpy()

            def faiss_addressed():
                out = np.empty(num_q, dtype=np.float32)
                for c in np.unique(classes.numpy()):
                    sel = np.nonzero(classes.numpy() == c)[0]
                    dist, idx = indexes[c].search(q_np[sel], n)
                    s = 1.0 / (dist + memory.delta)
                    out[sel] = (s * vals_np[c][idx]).sum(1) / s.sum(1)
                return out

            def faiss_all():
                out = np.empty((num_q, num_classes), dtype=np.float32)
                for c in range(num_classes):
                    dist, idx = indexes[c].search(q_np, n)
                    s = 1.0 / (dist + memory.delta)
                    out[:, c] = (s * vals_np[c][idx]).sum(1) / s.sum(1)
                return out

            check(faiss_addressed(), ref, 'faiss (addressed)')
            result.update(faiss=faiss.__version__, faiss_addressed_s=timed(faiss_addressed),
                          faiss_all_s=timed(faiss_all))
        except ImportError:
            result.update(faiss='not installed (pip install faiss-cpu)')
    memory.train()
    return result


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    import lt_plugins  # noqa: F401  (registration)
    from mmengine.optim import OptimWrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.structures import DataSample

    from lt_plugins.engine.hooks.iem_memory_hook import reset_optimizer_slots
    from lt_plugins.engine.optimizers import HybridSGDAdam
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    C, D = args.num_classes, args.in_channels
    ce = build(args, dict(type='GlobalAveragePooling'),
               dict(type='LinearClsHead', num_classes=C, in_channels=D))
    iem = build(args, dict(type='RSANeck', in_channels=D),
                dict(type='IEMHead', num_classes=C, in_channels=D, warmup_iters=0,
                     global_capacity=args.capacity, local_capacity=args.capacity,
                     num_neighbors=args.num_neighbors,
                     local_regions=args.local_regions or None))
    iem.backbone.load_state_dict(ce.backbone.state_dict())
    device = torch.device(args.device)
    models = dict(ce=ce.to(device).train(), iem=iem.to(device).train())
    gen = torch.Generator().manual_seed(0)
    for _, mem in iem.head.memories():
        fill(mem, gen)

    def optimizer(model):
        mem = [p for n, p in model.named_parameters() if '_memory.' in n]
        rest = [p for n, p in model.named_parameters() if '_memory.' not in n]
        groups = [dict(params=rest)] + ([dict(params=mem, adam=True, lr=1e-5)] if mem else [])
        return OptimWrapper(HybridSGDAdam(groups, lr=0.1, momentum=0.9, weight_decay=2e-4))

    optims = {k: optimizer(m) for k, m in models.items()}
    probs = torch.tensor(lt_counts(C), dtype=torch.float)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=gen).to(device)
    labels = torch.multinomial(probs / probs.sum(), args.batch_size, replacement=True,
                               generator=gen)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]

    def step(name):
        model, wrapper = models[name], optims[name]
        losses = model(x, samples, mode='loss')
        wrapper.update_params(sum(losses.values()))
        if name == 'iem':                       # what IEMMemoryHook does after the step
            model.head.flush_memories()
            for _, mem in model.head.memories():
                mask = mem.pop_overwritten()
                if mask is not None:
                    reset_optimizer_slots(wrapper.optimizer, mem.keys, mask)
                    reset_optimizer_slots(wrapper.optimizer, mem.values, mask)
        if device.type == 'cuda':
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step('ce')
        step('iem')
    assert all(bool(mem.valid.all()) for _, mem in iem.head.memories())
    times = dict(ce=[], iem=[])
    for r in range(args.rounds):
        for name in (('ce', 'iem') if r % 2 == 0 else ('iem', 'ce')):
            for _ in range(args.steps_per_round):
                t0 = time.perf_counter()
                step(name)
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}

    def throughput(model):
        model.eval()
        with torch.no_grad():
            model(x, samples, mode='predict')
            t0 = time.perf_counter()
            for _ in range(args.infer_batches):
                model(x, samples, mode='predict')
                if device.type == 'cuda':
                    torch.cuda.synchronize()
            out = args.infer_batches * args.batch_size / (time.perf_counter() - t0)
        model.train()
        return out

    infer = {name: throughput(model) for name, model in models.items()}
    # the reading of configs/iem/*-cpu-knn.py: the global memory alone, as a soft kNN over
    # its keys (no local reads at inference)
    paper_reading = (iem.head.inference_read, dict(iem.head.inference_weights))
    iem.head.inference_read = 'keys'
    iem.head.inference_weights = dict(classifier=0.0, global_memory=1.0, local_memory=0.0)
    infer['iem_keys_global'] = throughput(iem)
    iem.head.inference_read, iem.head.inference_weights = paper_reading

    with torch.no_grad():
        fmap = iem.backbone(x[:1])[-1]
    regions = iem.neck.num_regions(*fmap.shape[2:])
    result = dict(
        model=args.model_name, batch_size=args.batch_size, img_size=args.img_size,
        num_classes=C, capacity=args.capacity, num_neighbors=args.num_neighbors,
        regions_per_image=regions, local_regions=args.local_regions or regions,
        device=args.device, threads=args.threads,
        steps_per_model=len(times['ce']), median_step_s=med,
        ratio_step_iem_over_ce=med['iem'] / med['ce'], target_step_ratio=1.5,
        inference_img_per_s=infer, ratio_inference_ce_over_iem=infer['ce'] / infer['iem'],
        ratio_inference_ce_over_iem_keys_global=infer['ce'] / infer['iem_keys_global'],
        memory_bytes=iem.head.memory_bytes(), memory_bytes_with_adam=iem.head.memory_bytes(2),
        machine=platform.processor() or platform.machine(), torch=torch.__version__)
    result['reads_local_memory'] = read_benchmarks(args, iem.head.local_memory, gen)

    print(f'{"model":<6}{"median step (s)":>18}{"inference (img/s)":>20}')
    for k in ('ce', 'iem'):
        print(f'{k:<6}{med[k]:>18.4f}{infer[k]:>20.1f}')
    print(f'step ratio IEM / CE = {result["ratio_step_iem_over_ce"]:.3f} (target <= 1.5); '
          f'inference slowdown CE / IEM = {result["ratio_inference_ce_over_iem"]:.2f}x; '
          f'{args.local_regions or regions} of {regions} regions per image in the local '
          f'memory, C={C}, capacity {args.capacity}')
    print(f'inference with the global memory as a soft kNN over its keys only (-knn '
          f'configs): {infer["iem_keys_global"]:.1f} img/s, CE / IEM = '
          f'{result["ratio_inference_ce_over_iem_keys_global"]:.2f}x')
    print(f'memory bytes: {result["memory_bytes"] / 2**20:.1f} MiB '
          f'({result["memory_bytes_with_adam"] / 2**20:.1f} MiB with Adam moments)')
    reads = result['reads_local_memory']
    print(f'{"read (" + str(reads["queries"]) + " queries)":<28}{"batched":>10}{"loop":>10}'
          f'{"faiss":>10}{"loop/batched":>14}{"faiss/batched":>15}')
    for kind in ('addressed', 'all'):
        b, loop = reads[f'batched_{kind}_s'], reads[f'loop_{kind}_s']
        f = reads.get(f'faiss_{kind}_s')
        print(f'{kind:<28}{b:>10.4f}{loop:>10.4f}{(f if f else float("nan")):>10.4f}'
              f'{loop / b:>14.2f}{(f / b if f else float("nan")):>15.2f}')
    os.makedirs(args.work_dir, exist_ok=True)
    out = osp.join(args.work_dir, 'bench_iem_cost.json')
    with open(out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
