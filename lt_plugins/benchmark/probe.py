"""MBJ frozen-feature probe (``run.py --mbj-probe``): a fast calibration of MBJ's readings.

Features of a CE checkpoint (the benchmark's ``ce`` stage of a seed) are extracted once for
the train / val / test splits with the test pipeline (no augmentation), then the MBJ head
alone is fine-tuned on them for each reading of :data:`PROBE_READINGS` (10 epochs, SGD lr
0.01 from the CE classifier, instance-balanced batches of 128), next to two controls: CE
fine-tuning (``ce-ft``, memory off) and cRT (``crt``: re-initialised classifier,
class-balanced sampling, lr 0.1 cosine). It measures the re-balancing side of each reading
only (a frozen backbone without augmentation gives every image one feature, so there is no
feature jitter) and narrows down the readings worth a full run in seconds each. The reading
is chosen on the balanced validation split, never a control.
"""
import copy
import math
import time
from typing import Dict, List, Optional, Sequence

from .arms import ARMS
from .configs import build_stage_config
from .datasets import DatasetSpec

# head overrides of each reading (``memory`` merged into the head's memory; ``'x50C'``: 50 * C
# slots); ``crt``: re-initialised classifier, class-balanced sampling, lr 0.1 cosine.
PROBE_READINGS: Dict[str, dict] = {
    'ce-ft': dict(head=dict(memory_enabled=False), control=True),
    'crt': dict(head=dict(memory_enabled=False), crt=True, control=True),
    'paper': dict(head={}),
    'paper-raw': dict(head=dict(memory=dict(admission='raw'))),
    'beta1': dict(head=dict(memory=dict(beta=1.0))),
    'beta0.5': dict(head=dict(memory=dict(beta=0.5))),
    'beta1.5-eta1': dict(head=dict(eta=1.0)),
    'beta1-eta1': dict(head=dict(eta=1.0, memory=dict(beta=1.0))),
    'beta1-eta5': dict(head=dict(eta=5.0, memory=dict(beta=1.0))),
    'perclass5': dict(head=dict(memory=dict(size=None, per_class_slots=5))),
    'perclass5-beta1': dict(head=dict(memory=dict(size=None, per_class_slots=5, beta=1.0))),
    'size50C-beta1': dict(head=dict(memory=dict(size='x50C', beta=1.0))),
    'size50C-paper': dict(head=dict(memory=dict(size='x50C'))),
    'paper-capacity': dict(head=dict(memory_reduction='capacity')),
    'paper-batchred': dict(head=dict(memory_reduction='batch')),
    'cosine-beta1': dict(head=dict(classifier='cosine', memory=dict(beta=1.0))),
    'size50C-eta1': dict(head=dict(eta=1.0, memory=dict(size='x50C'))),
    'size50C-eta5': dict(head=dict(eta=5.0, memory=dict(size='x50C'))),
    'paper-eta5': dict(head=dict(eta=5.0)),
    'fr': dict(head=dict(variant='FR')),
    'fr-eta1': dict(head=dict(variant='FR', eta=1.0)),
}


def _features(model, dataset, batch: int = 256):
    """``(N, d)`` features and ``(N,)`` labels of ``dataset`` (model in eval mode)."""
    import torch
    from mmengine.dataset import pseudo_collate
    feats, labels = [], []
    with torch.no_grad():
        for start in range(0, len(dataset), batch):
            items = [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
            data = model.data_preprocessor(pseudo_collate(items), False)
            feats.append(model.extract_feat(data['inputs'])[-1].float())
            labels.append(torch.cat([s.gt_label for s in data['data_samples']]))
    return torch.cat(feats), torch.cat(labels)


def extract(spec: DatasetSpec, schedule: str, ce_checkpoint: str, work_dir: str,
            quick_indices: Optional[Dict[str, List[int]]] = None) -> dict:
    """The MBJ stage config on ``spec``, and the CE model's features of every split."""
    import torch
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS

    import lt_plugins  # noqa: F401
    from lt_plugins.datasets.class_counts import get_class_counts
    init_default_scope('mmpretrain')
    cfg = build_stage_config(ARMS['mbj-paper'].stage, spec, schedule, 0, work_dir,
                             ce_checkpoint, quick_indices)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['data_preprocessor'] = cfg.data_preprocessor
    model = MODELS.build(model_cfg)
    load_checkpoint(model, ce_checkpoint, map_location='cpu', strict=False, logger='silent')
    model.eval()
    out = dict(cfg=cfg, model=model, feats={}, labels={})
    start = time.perf_counter()
    for split in ('train', 'val', 'test'):
        ds_cfg = copy.deepcopy(cfg.test_dataloader.dataset)   # the test pipeline
        ds_cfg.update(split=split)
        ds_cfg['indices'] = copy.deepcopy(cfg[f'{split}_dataloader'].dataset.get('indices'))
        ds = DATASETS.build(ds_cfg)
        if split == 'train':
            out['counts'] = torch.as_tensor(get_class_counts(ds, spec.num_classes))
        out['feats'][split], out['labels'][split] = _features(model, ds)
    out['extract_s'] = time.perf_counter() - start
    return out


def _evaluate(head, feats, labels, counts) -> Dict[str, float]:
    import torch
    with torch.no_grad():
        pred = head.classify(feats).argmax(1)
    num_classes = len(counts)
    per_class = torch.full((num_classes, ), float('nan'))
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            per_class[c] = (pred[mask] == c).float().mean()
    res = dict(top1=float((pred == labels).float().mean() * 100))
    many, few = counts > 100, counts < 20
    for name, mask in (('many', many), ('medium', ~many & ~few), ('few', few)):
        vals = per_class[mask]
        vals = vals[~torch.isnan(vals)]
        if len(vals):
            res[name] = float(vals.mean() * 100)
    return res


def train_reading(data: dict, reading: dict, seed: int, epochs: int = 10,
                  batch: int = 128) -> dict:
    """Fine-tune a fresh MBJ head of ``reading`` on the cached training features."""
    import torch
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    cfg, counts = data['cfg'], data['counts']
    head_cfg = copy.deepcopy(cfg.model.head)
    over = copy.deepcopy(reading['head'])
    memory = over.pop('memory', {})
    if memory.get('size') == 'x50C':
        memory['size'] = 50 * len(counts)
    head_cfg['memory'].update(memory)
    head_cfg.update(over)
    head_cfg['memory']['seed'] = seed
    head_cfg['in_channels'] = int(data['feats']['train'].shape[1])   # the config says 'auto'
    torch.manual_seed(seed)
    head = MODELS.build(head_cfg)
    crt = reading.get('crt', False)
    if not crt:   # start from the CE classifier
        fc = {k: v for k, v in data['model'].head.state_dict().items() if k.startswith('fc.')}
        if head.classifier == 'linear':
            head.load_state_dict(fc, strict=False)
        else:
            head.weight.data.copy_(fc['fc.weight'])
    for m in head.modules():
        if hasattr(m, 'set_class_counts'):
            m.set_class_counts(counts)
    lr = 0.1 if crt else 0.01
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=2e-4)
    gen = torch.Generator().manual_seed(seed)
    feats, labels = data['feats']['train'], data['labels']['train']
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    n = len(labels)
    steps = (n + batch - 1) // batch
    weights = (1.0 / counts.float().clamp(min=1))[labels]
    start = time.perf_counter()
    for epoch in range(epochs):
        order = (torch.multinomial(weights, n, replacement=True, generator=gen) if crt
                 else torch.randperm(n, generator=gen))
        for step in range(steps):
            if crt:      # cosine to 0 over the iterations
                for group in opt.param_groups:
                    group['lr'] = 0.5 * lr * (1 + math.cos(
                        math.pi * (epoch * steps + step) / (epochs * steps)))
            idx = order[step * batch:(step + 1) * batch]
            losses = head.loss((feats[idx], ), [samples[int(i)] for i in idx])
            opt.zero_grad()
            sum(losses.values()).backward()
            opt.step()
    return dict(seed=seed, wall_s=time.perf_counter() - start,
                val=_evaluate(head, data['feats']['val'], data['labels']['val'], counts),
                test=_evaluate(head, data['feats']['test'], data['labels']['test'], counts))


def summarize_probe(runs: Dict[str, List[dict]]) -> dict:
    """Mean (and std over seeds) per reading; the reading chosen on mean val top-1, never a
    control."""
    import statistics
    out = {}
    for name, seeds in runs.items():
        entry = dict(seeds=[r['seed'] for r in seeds], control=bool(
            PROBE_READINGS[name].get('control')), wall_s=statistics.mean(
                r['wall_s'] for r in seeds))
        for split in ('val', 'test'):
            entry[split] = {}
            for key in seeds[0][split]:
                vals = [r[split][key] for r in seeds if key in r[split]]
                entry[split][key] = statistics.mean(vals)
                entry[split][key + '_std'] = statistics.stdev(vals) if len(vals) > 1 else None
        out[name] = entry
    candidates = [k for k, e in out.items() if not e['control']]
    chosen = max(candidates, key=lambda k: out[k]['val']['top1']) if candidates else None
    return dict(readings=out, chosen_on_val=chosen)


def run_probe(spec: DatasetSpec, schedule: str, checkpoints: Dict[int, str], work_dir: str,
              readings: Optional[Sequence[str]] = None, epochs: int = 10,
              quick_indices: Optional[Dict[str, List[int]]] = None) -> dict:
    """Every reading (default: all of :data:`PROBE_READINGS`) on each seed's CE checkpoint."""
    names = list(readings or PROBE_READINGS)
    unknown = [n for n in names if n not in PROBE_READINGS]
    if unknown:
        raise ValueError(f'--mbj-probe readings {unknown}: choose from {list(PROBE_READINGS)}')
    runs: Dict[str, List[dict]] = {n: [] for n in names}
    extract_s = {}
    for seed, ckpt in checkpoints.items():
        data = extract(spec, schedule, ckpt, work_dir, quick_indices)
        extract_s[seed] = data['extract_s']
        for name in names:
            runs[name].append(train_reading(data, PROBE_READINGS[name], seed, epochs))
    out = summarize_probe(runs)
    out.update(mode='frozen backbone, cached features (no augmentation)', epochs=epochs,
               checkpoints={str(k): v for k, v in checkpoints.items()}, extract_s=extract_s,
               class_counts=data['counts'].tolist())
    return out
