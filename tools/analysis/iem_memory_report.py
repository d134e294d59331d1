"""Per-class health of a trained IEM model's episodic memories (what the memories know).

For every class of the global memory (and the local one with ``--memory local``) it prints:

* ``slots``: valid slots; ``value``: mean stored value (Eq. 1's ``v``, the write-time
  confidence); ``age``: mean age in steps (since the last read or write of the slot);
* on a split (``--split val`` by default, the queries of that class's images, current
  backbone): top-1 of the memory read alone with Eq. 1's per-class normalisation
  (``read``) and normalised over all classes (``read-all``), of the same soft kNN with every
  value taken as 1 (``knn``: the keys alone), of a 1-nearest-key classifier (``1nn``), and the mean squared distance from a query to the
  ``n`` nearest keys of its own class (``d_own``) and of the nearest other class
  (``d_other``); ``d_own > d_other`` means the class's keys no longer sit where the
  backbone puts its images (stale keys, or overlap).

    python tools/analysis/iem_memory_report.py CONFIG CHECKPOINT [--split test] \\
        [--cfg-options val_dataloader.dataset.data_root=...]
"""
import argparse
from typing import List, Optional

import torch


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--split', default='val', choices=['val', 'test'])
    p.add_argument('--memory', default='global', choices=['global', 'local'])
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='key=value overrides of the config (mmengine DictAction syntax)')
    return p.parse_args(argv)


@torch.no_grad()
def class_report(memory, queries: torch.Tensor, labels: torch.Tensor) -> List[dict]:
    """Rows of per-class statistics for ``queries`` ``(N, D)`` or ``(N, R, D)`` of ``labels``.

    Region queries (``(N, R, D)``) are scored per image by the mean over regions, as the head
    does with ``region_reduce='mean'``.
    """
    regions = queries.dim() == 3
    flat = queries.reshape(-1, memory.dim)
    keys = memory.keys.detach()
    dists = torch.cdist(flat, keys.reshape(-1, memory.dim)).pow(2).view(
        flat.size(0), memory.num_classes, memory.capacity)
    dists = dists.masked_fill(~memory.valid.unsqueeze(0), float('inf'))
    n_near = dists.topk(memory.num_neighbors, dim=-1, largest=False).values
    sim = (n_near.clamp_min(0) + memory.delta).reciprocal().nan_to_num(0.0)   # inf -> 0
    knn = sim.sum(-1) / sim.sum((-2, -1)).unsqueeze(-1).clamp_min(1e-30)      # values = 1
    n_near = n_near.masked_fill(~torch.isfinite(n_near), float('nan')).nanmean(-1)  # (Q, C)
    nearest = dists.amin(-1)                                                        # (Q, C)
    read = memory.read_all(flat)
    read_all = memory.read_all(flat, 'all')
    if regions:
        shape = (*queries.shape[:2], memory.num_classes)
        n_near, nearest = n_near.view(shape).mean(1), nearest.view(shape).amin(1)
        knn = knn.view(shape).mean(1)
        read, read_all = read.view(shape).mean(1), read_all.view(shape).mean(1)
    own = n_near.gather(1, labels.view(-1, 1)).squeeze(1)
    other = n_near.scatter(1, labels.view(-1, 1), float('inf')).nan_to_num(
        nan=float('inf')).amin(1)
    rows = []
    for cls in range(memory.num_classes):
        sel = labels == cls
        valid = memory.valid[cls]
        row = dict(cls=cls, slots=int(valid.sum()),
                   value=float(memory.values.detach()[cls][valid].mean()) if valid.any()
                   else float('nan'),
                   age=float(memory.ages[cls][valid].float().mean()) if valid.any()
                   else float('nan'),
                   images=int(sel.sum()))
        if sel.any():
            row.update({name: float((scores[sel].argmax(1) == cls).float().mean() * 100)
                        for name, scores in (('read', read), ('read-all', read_all),
                                             ('knn', knn), ('1nn', -nearest))})
            row.update(d_own=float(own[sel].mean()), d_other=float(other[sel].mean()))
        rows.append(row)
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    import lt_plugins  # noqa: F401  (registration, compat fixes)
    from mmengine.config import Config, DictAction
    from mmengine.runner import Runner

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        action = DictAction(option_strings=[], dest='opts')
        ns = argparse.Namespace()
        action(None, ns, args.cfg_options)
        cfg.merge_from_dict(ns.opts)
    cfg.load_from = args.checkpoint
    cfg.work_dir = cfg.get('work_dir', 'work_dirs/iem_memory_report')
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    model = runner.model
    model.eval()
    head = model.head
    memory = getattr(head, f'{args.memory}_memory', None)
    if memory is None:
        raise SystemExit(f'the model has no {args.memory} memory (use_{args.memory}_memory=False)')
    loader = runner.val_dataloader if args.split == 'val' else runner.test_dataloader
    queries, labels = [], []
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            gap, regions, _ = head._unpack(model.extract_feat(data['inputs']))
            queries.append(gap if args.memory == 'global' else regions)
            labels.append(torch.cat([s.gt_label for s in data['data_samples']]))
    rows = class_report(memory, torch.cat(queries), torch.cat(labels))
    rows.append(dict(cls='mean', **{k: sum(r[k] for r in rows) / len(rows)
                                    for k in ('read', 'read-all', 'knn', '1nn')
                                    if all(k in r for r in rows)}))
    cols = ('cls', 'slots', 'value', 'age', 'images', 'read', 'read-all', 'knn', '1nn', 'd_own',
            'd_other')
    print(f'{args.memory} memory, {args.split} split; top-1 (%) per class of each reading')
    print(''.join(f'{c:>10}' for c in cols))
    for row in rows:
        print(''.join(f'{row.get(c, float("nan")):>10.2f}' if isinstance(row.get(c), float)
                      else f'{row.get(c, ""):>10}' for c in cols))


if __name__ == '__main__':
    main()
