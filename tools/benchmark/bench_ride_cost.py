"""Parameters and training/inference step time of RIDE (K experts) against the single model.

Models, built from the shipped configs' model sections (timm ``resnet32_cifar`` by default):
``single`` = the LDAM-DRW baseline (one network, cosine head), ``ride`` = RIDE with K experts at
the configs' 0.75 width, ``ride-full`` = K full-width experts, ``mbj-ride`` = RIDE with one MBJ
memory per expert switched on and full. Every model gets the same batch (random images, a
CIFAR-10-LT IR100 label profile) and a plain SGD step; steps of the models are interleaved in
rounds so that machine-load drift hits all equally; median step times are reported, as ratios
to ``single``. Inference time (all experts, no router) is measured the same way. Run pinned:

    OMP_NUM_THREADS=1 taskset -c 1 python tools/benchmark/bench_ride_cost.py

Prints a table and writes ``<work-dir>/bench_ride_cost.json``.
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
    p.add_argument('--num-experts', type=int, default=4)
    p.add_argument('--num-classes', type=int, default=10)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--img-size', type=int, default=32)
    p.add_argument('--rounds', type=int, default=8)
    p.add_argument('--steps-per-round', type=int, default=3)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--work-dir', default='work_dirs/bench_ride_cost')
    return p.parse_args()


def lt_counts(num_classes: int, n_max: int = 5000, ir: float = 100.0):
    return [int(n_max * ir ** (-i / (num_classes - 1))) for i in range(num_classes)]


def model_cfgs(args):
    k, c = args.num_experts, args.num_classes
    ride_head = dict(type='RIDEHead', num_classes=c, in_channels='auto', num_experts=k,
                     loss=dict(type='LDAMLoss'),
                     diversity=dict(type='RIDEDiversityLoss', loss_weight=-0.2))
    tail = 2 if args.model_name.endswith('_cifar') else 1

    def ride(width, mbj=None):
        return dict(type='RIDEClassifier',
                    backbone=dict(type='MultiExpertBackbone', model_name=args.model_name,
                                  num_experts=k, tail_stages=tail, width_factor=width),
                    neck=dict(type='GlobalAveragePooling'),
                    head=dict(ride_head, mbj=mbj))
    return {
        'single': dict(type='AutoChannelClassifier',
                       backbone=dict(type='TIMMBackbone', model_name=args.model_name),
                       neck=dict(type='GlobalAveragePooling'),
                       head=dict(type='NormedLinearClsHead', num_classes=c,
                                 in_channels='auto')),
        'ride': ride(0.75),
        'ride-full': ride(1.0),
        'mbj-ride': ride(0.75, mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=1.5),
                                        eta=15.0)),
    }


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    import lt_plugins  # noqa: F401  (registration)
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    init_default_scope('mmpretrain')

    counts = torch.tensor(lt_counts(args.num_classes))
    gen = torch.Generator().manual_seed(0)
    labels = torch.multinomial(counts.float(), args.batch_size, replacement=True, generator=gen)
    images = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=gen)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]

    models, optims = {}, {}
    for name, cfg in model_cfgs(args).items():
        torch.manual_seed(0)
        model = MODELS.build(cfg)
        for module in model.modules():
            if hasattr(module, 'set_class_counts'):
                module.set_class_counts(counts)
            if hasattr(module, 'set_drw_enabled'):
                module.set_drw_enabled(True)
        model.train()
        models[name] = model
        optims[name] = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if 'mbj-ride' in models:  # fill every memory first, so the memory loss runs at full size
        head = models['mbj-ride'].head
        while any(bank.fill_ratio() < 1.0 for bank in head.memories):
            with torch.no_grad():
                feats = models['mbj-ride'].extract_feat(images)
            head.loss(feats, samples)

    def train_step(name):
        model, opt = models[name], optims[name]
        opt.zero_grad()
        losses = model(images, samples, mode='loss')
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        opt.step()

    def infer_step(name):
        model = models[name]
        model.eval()
        with torch.no_grad():
            model(images, mode='tensor')
        model.train()

    times = {n: dict(train=[], infer=[]) for n in models}
    for name in models:
        for _ in range(args.warmup):
            train_step(name)
            infer_step(name)
    for _ in range(args.rounds):
        for name in models:
            for kind, fn in (('train', train_step), ('infer', infer_step)):
                for _ in range(args.steps_per_round):
                    start = time.perf_counter()
                    fn(name)
                    times[name][kind].append(time.perf_counter() - start)

    rows = {}
    base_params = sum(p.numel() for p in models['single'].parameters())
    base_train = statistics.median(times['single']['train'])
    base_infer = statistics.median(times['single']['infer'])
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters())
        tr, inf = statistics.median(times[name]['train']), statistics.median(times[name]['infer'])
        rows[name] = dict(params=params, param_ratio=params / base_params, train_step_s=tr,
                          train_ratio=tr / base_train, infer_step_s=inf,
                          infer_ratio=inf / base_infer, steps=len(times[name]['train']))
    print(f'{args.model_name}, batch {args.batch_size} x {args.img_size}px, '
          f'{args.num_experts} experts, {args.threads} thread(s)')
    print(f'{"model":<10} {"params":>10} {"x":>6} {"train s":>9} {"x":>6} {"infer s":>9} '
          f'{"x":>6}')
    for name, r in rows.items():
        print(f'{name:<10} {r["params"]:>10,} {r["param_ratio"]:>6.2f} {r["train_step_s"]:>9.3f} '
              f'{r["train_ratio"]:>6.2f} {r["infer_step_s"]:>9.3f} {r["infer_ratio"]:>6.2f}')
    os.makedirs(args.work_dir, exist_ok=True)
    out = dict(args=vars(args), torch=torch.__version__, machine=platform.processor(),
               results=rows)
    path = osp.join(args.work_dir, 'bench_ride_cost.json')
    with open(path, 'w') as f:
        json.dump(out, f, indent=1)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
