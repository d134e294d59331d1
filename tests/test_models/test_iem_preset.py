"""IEMHead / IEMVectorHead as presets of the shared memory-reader part, checked against IEM's
equations (Eq. 1-4 and 14-16) written out a second time in this file, straightforwardly: one
query at a time, distances as ``sum((q - k)^2)``, explicit sorts, a Python loop over the writes.

Each case trains a neck + head for a few SGD steps (warm-up writes, then the memory MSE terms
and writes, the memories flushed by the head or as ``IEMMemoryHook`` does) and, side by side,
a copy of the neck with the reference below, from the same weights and on the same batches.
Every step compares the loss terms, every gradient (neck, classifier, memory keys and
values) and the memories' whole state (keys, values, ages, validity, written values); at the
end the inference scores, predicted labels, open-set confidences and the state dict.

Why the comparison holds on every CPU: both sides run in float64 (the written memory values
and the classifier softmax of inference are float32 by design, on both sides), on the same
machine in the same run, so they differ only by the round-off of their different formulas
(the head's distances are ``|q|^2 + |k|^2 - 2 q.k``, batched): at most 1e-12 relative after
the five steps (8e-13 measured), compared at RTOL = 1e-6. A read is discontinuous where a
choice is made (the n-th nearest slot, the region maximum, the hard negative, the most
attended regions and their order, a write's merge radius and nearest slot, the predicted
label, the multi-label threshold), so the reference measures at each such choice the gap
between the chosen and the next candidate, relative to the scale of the round-off, and the
test asserts that the smallest gap is at least MARGIN = 1e-9: a thousand times the largest
difference between the two sides, so no last-bit difference on any machine can make the head
choose otherwise than the reference (the smallest gap of these inputs is 1e-7). Candidates
that are the same vector bit for bit (regions whose ReLU is all zero give the same region
feature; one key written to several classes) count once: either choice gives the same result.

This replaces a reference recorded on one machine (the heads before the split, commit
8382b92), which another CPU failed: with three regions per image and n = 3, all nearest slots
of a region often hold one image's value, so region reads tie exactly and the region maximum
(and the score after five steps) followed the last bit of the distances.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401
from lt_plugins.models.heads.iem_head import IEMHead
from lt_plugins.models.heads.iem_vector_head import IEMVectorHead
from lt_plugins.models.necks.rsa_neck import RSANeck
from lt_plugins.models.parts.memory_reader import (EpisodicMemoryReader, average_scores,
                                                   class_values, normalize_reads)

C, DIM, STEPS = 4, 6, 5
RTOL, ATOL = 1e-6, 1e-9
MARGIN = 1e-9
BASE = dict(global_capacity=6, local_capacity=10, num_neighbors=3, warmup_iters=2)

CASES = {
    # the paper's reading: both memories, Eq. 1 reads, prob warm-up, flushed by the head
    'paper': dict(),
    'paper_hook_flush': dict(hook_flush=True, local_regions=4),
    # merge radius 0.3: enough Eq. 4 merges that not every merged slot is overwritten by
    # the same flush's appends (25 regions per image, 10 slots per class)
    'keys_normalized': dict(inference_read='keys', normalize_memory_scores=True,
                            merge_radius=0.3, open_confidence='score', hook_flush=True),
    # two regions per image and n = 3: a read always mixes two images' values (with three,
    # all n nearest slots often hold one image's value: its region reads tie exactly and
    # the maximum's gradient goes to whichever region round-off favours)
    'all_read_max_regions': dict(inference_read='all', region_reduce='max',
                                 memory_loss_to_backbone=True, local_regions=2,
                                 inference_weights=dict(classifier=0.3, global_memory=0.5,
                                                        local_memory=0.2)),
    'no_local_knn_logit': dict(use_local_memory=False, warmup_value='logit',
                               open_confidence='memory_knn', pooled=True),
    'no_global_score_conf': dict(use_global_memory=False, open_confidence='score',
                                 write_after_warmup=False, memory_loss_weight=0.5),
    'memory_mass_no_write_after': dict(open_confidence='memory_mass',
                                       write_after_warmup=False, inference_read='keys',
                                       hook_flush=True),
    'vector_scores_keys_knn': dict(vector=True, inference_read='keys',
                                   open_confidence='memory_knn', classifier_weight=0.7),
    'vector_labels_logit_norm': dict(vector=True, warmup_value='logit',
                                     normalize_memory_scores=True, open_confidence='memory_mass',
                                     memory_loss_to_backbone=True, hook_flush=True),
}
# IEMHead's documented defaults, which the reference reads its settings from
DEFAULTS = dict(use_global_memory=True, use_local_memory=True, delta=1e-3, gamma=0.99,
                dedupe_tol=1e-6, merge_radius=None, warmup_value='prob',
                memory_loss_to_backbone=False, write_after_warmup=True, region_reduce='mean',
                local_regions=None, memory_loss_weight=1.0, normalize_memory_scores=False,
                inference_read='class', open_confidence=None, classifier_weight=0.5,
                thr=0.5, inference_weights=dict(classifier=0.5, global_memory=0.25,
                                                local_memory=0.25))


class Margins:
    """The smallest relative gap met at each kind of discrete choice."""

    def __init__(self):
        self.smallest = {}

    def add(self, kind, gap, scale, where):
        gap, scale = (float(torch.as_tensor(v).detach()) for v in (gap, scale))
        rel = gap / max(scale, 1e-300)
        if rel < self.smallest.get(kind, (math.inf, ''))[0]:
            self.smallest[kind] = (rel, where)

    def ranking(self, kind, scores, vectors, pairs, where):
        """Gaps of a descending ranking of ``scores`` at the adjacent positions ``pairs``
        (``i`` and ``i + 1``); candidates whose ``vectors`` are bitwise equal are skipped."""
        order = torch.sort(scores, descending=True, stable=True).indices
        for i in pairs:
            if i + 1 >= len(order):
                break
            a, b = order[i], order[i + 1]
            if vectors is not None and torch.equal(vectors[a], vectors[b]):
                continue
            size = max(abs(float(scores[a])), abs(float(scores[b])), 1e-3)
            self.add(kind, scores[a] - scores[b], size, where)
        return order


class RefMemory:
    """One IEM memory: per class ``capacity`` slots of trainable keys and values, ages and
    validity; Eq. 1-2 reads of the ``n`` nearest valid slots, Eq. 3-4 writes staged and
    applied by :meth:`flush`."""

    def __init__(self, capacity, dim, s, margins, name):
        self.capacity, self.n, self.s, self.margins, self.name = capacity, s['n'], s, margins, name
        self.keys = torch.zeros(C, capacity, dim, requires_grad=True)
        self.values = torch.zeros(C, capacity, requires_grad=True)
        self.ages = torch.zeros(C, capacity, dtype=torch.long)
        self.valid = torch.zeros(C, capacity, dtype=torch.bool)
        self.written_values = torch.zeros(C, capacity)
        radius = s['merge_radius']
        self.tol = max(s['dedupe_tol'], 0.0 if radius is None else radius**2)
        self.staged, self.read_slots, self.pending = [], set(), False
        self.merges = 0                                   # Eq. 4 value updates applied

    def nearest(self, query, flat, where, values_matter=True):
        """The ``n`` nearest of the slots ``flat`` (indices into the ``C * capacity`` slots)
        by ``|query - key|^2``, and their distances; records the gap at the n-th unless both
        slots hold the same key (and value, where values count)."""
        keys = self.keys.reshape(C * self.capacity, -1)[flat]
        dist = (query - keys).pow(2).sum(-1)
        order = torch.sort(dist.detach(), stable=True).indices
        if len(order) > self.n:
            a, b = order[self.n - 1], order[self.n]
            same = torch.equal(keys[a], keys[b])
            if values_matter:
                values = self.values.detach().flatten()
                same = same and bool(values[flat[a]] == values[flat[b]])
            if not same:
                scale = (query.detach().pow(2).sum() + self.s['delta']
                         + keys.detach()[[int(a), int(b)]].pow(2).sum(-1).max())
                self.margins.add('n-th nearest slot', dist[b] - dist[a], scale,
                                 f'{where} {self.name}')
        return flat[order[:self.n]], dist[order[:self.n]]

    def knn(self, query, cls, where):
        """The ``n`` nearest valid slots of class ``cls`` and their distances."""
        flat, dist = self.nearest(query, cls * self.capacity
                                  + self.valid[cls].nonzero().flatten(), where)
        return flat - cls * self.capacity, dist

    def similarity(self, dist):
        return 1.0 / (dist.clamp_min(0) + self.s['delta'])          # Eq. 2

    def read(self, query, cls, where, train):
        """Eq. 1: the similarity-weighted mean of the values of the ``n`` nearest slots of
        class ``cls`` (0 for an empty class); a training read resets their ages."""
        slots, dist = self.knn(query, cls, where)
        if len(slots) == 0:
            return query.new_zeros(())
        if train:
            self.read_slots.update((cls, int(s)) for s in slots)
            self.pending = True
        sim = self.similarity(dist)
        return (sim * self.values[cls, slots]).sum() / sim.sum()

    def read_group(self, regions, cls, where, train=True):
        """The reads of a region set ``(R, D)`` of class ``cls``, combined (mean / max)."""
        reads = torch.stack([self.read(r, cls, where, train) for r in regions])
        if self.s['region_reduce'] == 'max':
            self.margins.ranking('region maximum', reads.detach(), regions.detach(), [0],
                                 f'{where} {self.name}')
            return reads.amax(0)
        return reads.mean(0)

    @torch.no_grad()
    def read_all(self, query, reading, where):
        """``(C,)`` inference reads: each class's ``n`` nearest slots; 'class' divides by
        the class's own similarity mass, 'all' by every class's, 'keys' is 'all' with
        every value 1."""
        nums, dens = [], []
        for cls in range(C):
            slots, dist = self.knn(query, cls, where)
            sim = self.similarity(dist)
            value = torch.ones_like(sim) if reading == 'keys' else self.values[cls, slots]
            nums.append((sim * value).sum())
            dens.append(sim.sum())
        nums, dens = torch.stack(nums), torch.stack(dens)
        if reading != 'class':
            dens = dens.sum().expand(C)
        return torch.where(dens > 0, nums / dens.clamp_min(1e-300), torch.zeros_like(nums))

    @torch.no_grad()
    def nearest_similarity(self, query, where):
        """Mean Eq. 2 similarity of the ``n`` nearest valid slots of any class."""
        _, dist = self.nearest(query, self.valid.flatten().nonzero().flatten(), where,
                               values_matter=False)
        return self.similarity(dist).mean() if len(dist) else query.new_zeros(())

    def write(self, keys, value, cls):
        """Stage Eq. 3 writes: the keys ``(R, D)`` of one sample, sharing its value."""
        self.staged += [(cls, key.detach().clone(), value) for key in keys]
        self.pending = True

    @torch.no_grad()
    def flush(self, where):
        """Age every slot, reset the ages of the slots read, then apply the staged writes:
        a key within the merge radius of its class's nearest stored key updates that slot's
        value (Eq. 4, the last such write wins); the others (bitwise duplicates: the last)
        go to the free slots, then the oldest (lowest index first), the last ``capacity``
        of a class kept."""
        if not self.pending:
            return
        self.ages[self.valid] += 1
        for cls, slot in self.read_slots:
            self.ages[cls, slot] = 0
        stored, was_valid = self.keys.detach().clone(), self.valid.clone()
        hits, appends = {}, []
        for i, (cls, key, value) in enumerate(self.staged):
            slots = was_valid[cls].nonzero().flatten()
            if len(slots):
                dist = (key - stored[cls, slots]).pow(2).sum(-1)
                order = torch.sort(dist, stable=True).indices
                near = dist[order[0]]
                self.margins.add('merge radius', abs(near - self.tol), self.tol,
                                 f'{where} {self.name} write')
                if near <= self.tol:
                    if len(slots) > 1:
                        self.margins.add('nearest slot of a merge', dist[order[1]] - near,
                                         key.pow(2).sum() + stored[cls, slots].pow(2).sum(-1)
                                         .max(), f'{where} {self.name} write')
                    hits[(cls, int(slots[order[0]]))] = i
                    continue
            appends.append(i)
        protect = torch.zeros_like(self.valid)
        gamma = self.s['gamma']
        for (cls, slot), i in hits.items():
            self.values[cls, slot] = gamma * self.staged[i][2] + (1 - gamma) * self.values[
                cls, slot]
            self.written_values[cls, slot] = self.values[cls, slot]
            self.ages[cls, slot] = 0
            protect[cls, slot] = True
            self.merges += 1
        last = {(self.staged[i][0], tuple(self.staged[i][1].tolist())): i for i in appends}
        appends = sorted(last.values())
        for cls in range(C):
            entries = [i for i in appends if self.staged[i][0] == cls][-self.capacity:]
            slots = range(self.capacity)
            free = [s for s in slots if not self.valid[cls, s]]
            oldest = sorted((s for s in slots if self.valid[cls, s] and not protect[cls, s]),
                            key=lambda s: (-int(self.ages[cls, s]), s))
            for i, slot in zip(entries, free + oldest + [s for s in slots if protect[cls, s]]):
                _, key, value = self.staged[i]
                self.keys[cls, slot] = key
                self.values[cls, slot] = value
                self.written_values[cls, slot] = value
                self.valid[cls, slot] = True
                self.ages[cls, slot] = 0
        self.staged, self.read_slots, self.pending = [], set(), False


class RefIEM:
    """IEMHead (or IEMVectorHead) written out: a linear classifier, the memories, the
    training step (CE or BCE, Eq. 14-16 after warm-up, staged writes) and the inference
    average; ``neck`` is a copy of the test's neck, trained with it."""

    def __init__(self, cfg, neck, fc, margins):
        s = dict(DEFAULTS, **BASE, **cfg)
        s['n'] = s['num_neighbors']
        self.s, self.margins = s, margins
        self.vector, self.pooled = s.get('vector', False), s.get('pooled', False)
        self.neck = copy.deepcopy(neck)
        self.weight = fc.weight.detach().clone().requires_grad_()
        self.bias = fc.bias.detach().clone().requires_grad_()
        self.memories = {}
        if s['use_global_memory'] or self.vector:
            self.memories['global_memory'] = RefMemory(s['global_capacity'], DIM, s,
                                                       margins, 'global_memory')
        if s['use_local_memory'] and not self.vector:
            self.memories['local_memory'] = RefMemory(s['local_capacity'], DIM, s,
                                                      margins, 'local_memory')
        self.num_steps = 0

    def params(self):
        return dict(self.neck.named_parameters(prefix='neck'), **{
            'fc.weight': self.weight, 'fc.bias': self.bias}, **{
            f'{name}.{part}': getattr(mem, part) for name, mem in self.memories.items()
            for part in ('keys', 'values')})

    def features(self, x, where):
        """``(global key, region keys or None, classifier input)``."""
        out = self.neck(x)
        if self.vector:
            return out, None, out
        gap, regions, weights, attended = out
        if self.pooled:
            return attended, None, attended
        k = self.s['local_regions']
        if k is not None and regions.size(1) > k:         # the most attended regions, in order
            kept = []
            for b in range(regions.size(0)):
                order = self.margins.ranking('most attended regions', weights[b].detach(),
                                             regions[b].detach(), range(k), where)
                kept.append(regions[b, order[:k]])
            regions = torch.stack(kept)
        return gap, regions, attended

    def loss(self, x, target, where):
        for mem in self.memories.values():               # the previous step's staged writes
            mem.flush(where)
        gap, regions, attended = self.features(x, where)
        logits = attended @ self.weight.t() + self.bias
        batch = logits.size(0)
        if self.vector:
            # BCE summed over classes, averaged over samples; float32 labels, as
            # mmpretrain passes them (which makes the loss float32)
            losses = {'loss': F.binary_cross_entropy_with_logits(
                logits, target.float(), reduction='sum') / batch}
            groups = [(i, c) for i in range(batch) for c in range(C) if target[i, c] > 0]
            negatives = [[c for c in range(C) if target[i, c] <= 0] for i in range(batch)]
        else:
            losses = {'loss': F.cross_entropy(logits, target)}
            groups = [(i, int(target[i])) for i in range(batch)]
            negatives = [[c for c in range(C) if c != target[i]] for i in range(batch)]
        queries = {'global_memory': gap[:, None], 'local_memory': regions}
        warm = self.num_steps < self.s['warmup_iters']
        hard = []
        if not warm:                    # ybar: the highest-scoring wrong (negative) class
            for i, classes in enumerate(negatives):
                if classes:
                    scores = logits[i, classes].detach()
                    order = self.margins.ranking('hard negative', scores, None, [0],
                                                 f'{where} sample {i}')
                    hard.append((i, classes[int(order[0])]))
        for name, mem in self.memories.items():
            if warm:
                losses[f'loss_{name}'] = 0.0 * (mem.keys.sum() + mem.values.sum())
                continue
            query = queries[name]
            if not self.s['memory_loss_to_backbone']:
                query = query.detach()
            pos = torch.stack([mem.read_group(query[i], c, where) for i, c in groups])
            term = (pos - 1).pow(2).mean()
            if hard:
                neg = torch.stack([mem.read_group(query[i], c, where) for i, c in hard])
                term = term + neg.pow(2).mean()
            losses[f'loss_{name}'] = self.s['memory_loss_weight'] * term
        if warm or self.s['write_after_warmup']:
            with torch.no_grad():                          # Eq. 3 values, float32 by design
                if self.s['warmup_value'] == 'logit':
                    values = logits.float()
                else:
                    values = (logits.float().sigmoid() if self.vector
                              else logits.float().softmax(1))
            for name, mem in self.memories.items():
                for i, c in groups:
                    mem.write(queries[name][i], values[i, c].to(logits.dtype), c)
        self.num_steps += 1
        return losses

    @torch.no_grad()
    def predict(self, x, where):
        """Inference scores, predicted labels and the open-set confidence."""
        gap, regions, attended = self.features(x, where)
        logits = attended @ self.weight.t() + self.bias
        s = self.s
        if self.vector:
            cls_scores = logits.float().sigmoid()
            weights = dict(classifier=s['classifier_weight'],
                           global_memory=1 - s['classifier_weight'])
        else:
            cls_scores = logits.float().softmax(1)
            weights = dict(DEFAULTS['inference_weights'], **s['inference_weights'])
            weights = {k: v for k, v in weights.items()
                       if k == 'classifier' or k in self.memories}
        scores = weights['classifier'] * cls_scores
        queries = {'global_memory': gap[:, None], 'local_memory': regions}
        for name, mem in self.memories.items():
            if not weights[name]:
                continue
            read = []
            for b, group in enumerate(queries[name]):
                per_region = torch.stack([mem.read_all(q, s['inference_read'], where)
                                          for q in group])                         # (R, C)
                if s['region_reduce'] == 'max':
                    for c in range(C):
                        self.margins.ranking('region maximum', per_region[:, c], group, [0],
                                             f'{where} {name} inference')
                    read.append(per_region.amax(0))
                else:
                    read.append(per_region.mean(0))
            read = torch.stack(read)
            if s['normalize_memory_scores']:
                read = read.clamp_min(0) / read.clamp_min(0).sum(1, keepdim=True).clamp_min(
                    1e-12)
            scores = scores + weights[name] * read
        scores = scores / sum(weights.values())
        if self.vector:
            for b, row in enumerate(scores):
                for c, v in enumerate(row):
                    self.margins.add('score threshold', abs(v - s['thr']), 1.0,
                                     f'{where} sample {b} class {c}')
            labels = [(row >= s['thr']).nonzero().view(-1) for row in scores]
        else:
            labels = [self.margins.ranking('predicted label', row, None, [0],
                                           f'{where} sample {b}')[:1]
                      for b, row in enumerate(scores)]
        conf = s['open_confidence']
        if conf == 'score':
            confidence = scores.max(1).values
        elif conf == 'memory_knn':
            mem = self.memories['global_memory']
            confidence = torch.stack([mem.read_all(q, 'keys', where).max() for q in gap])
        elif conf == 'memory_mass':
            mem = self.memories['global_memory']
            confidence = torch.stack([mem.nearest_similarity(q, where) for q in gap])
        else:
            confidence = None
        return scores, labels, confidence

    def state(self):
        out = {'fc.weight': self.weight, 'fc.bias': self.bias,
               'num_steps': torch.tensor(self.num_steps)}
        for name, mem in self.memories.items():
            for part in ('keys', 'values', 'ages', 'valid', 'written_values'):
                out[f'{name}.{part}'] = getattr(mem, part)
        return out


def _labels(gen, batch, vector):
    if not vector:
        return torch.randint(0, C, (batch, ), generator=gen)
    multi = torch.rand(batch, C, generator=gen) < 0.4
    multi[torch.arange(batch), torch.randint(0, C, (batch, ), generator=gen)] = True
    multi[0] = True                                    # one sample without a negative class
    return multi


def _samples(labels, vector, use_score):
    if not vector:
        return [DataSample().set_gt_label(int(y)) for y in labels]
    if use_score:
        return [DataSample().set_gt_score(row.float()) for row in labels]
    return [DataSample().set_gt_label(row.nonzero().view(-1)) for row in labels]


def _close(got, want, where):
    got = torch.zeros_like(want) if got is None else got
    want = torch.zeros_like(got) if want is None else want
    torch.testing.assert_close(got.detach(), want.detach().to(got.dtype), rtol=RTOL,
                               atol=ATOL, msg=lambda m: f'{where}: {m}')


def _run_side_by_side(case):
    """Train the head and the reference ``STEPS`` SGD steps on the same batches, comparing
    every step; then compare their inference. Returns the reference's margins."""
    cfg = dict(CASES[case])
    vector, pooled = cfg.pop('vector', False), cfg.pop('pooled', False)
    hook_flush = cfg.pop('hook_flush', False)
    torch.manual_seed(0)
    if vector:
        neck = torch.nn.Linear(DIM, DIM)
        head = IEMVectorHead(C, DIM, global_capacity=BASE['global_capacity'],
                             num_neighbors=BASE['num_neighbors'],
                             warmup_iters=BASE['warmup_iters'], **cfg)
    else:
        neck = RSANeck(DIM)
        head = IEMHead(C, DIM, **dict(BASE, **cfg))
    margins = Margins()
    ref = RefIEM(CASES[case], neck, head.fc, margins)
    head_params = dict(neck.named_parameters(prefix='neck'), **dict(head.named_parameters()))
    ref_params = ref.params()
    assert sorted(head_params) == sorted(ref_params)
    optim = torch.optim.SGD(list(head_params.values()), lr=0.1)
    gen = torch.Generator().manual_seed(1)

    def feats_of(x):
        if vector:
            return (neck(x), )
        out = neck(x)
        return out[3] if pooled else out

    for step in range(STEPS):
        where = f'{case} step {step}'
        x = torch.randn(8, DIM, *(() if vector else (3, 3)), generator=gen)
        y = _labels(gen, 8, vector)
        losses = head.loss(feats_of(x), _samples(y, vector, use_score=step % 2 == 0))
        optim.zero_grad()
        sum(losses.values()).backward()
        want = ref.loss(x, y, where)
        sum(want.values()).backward()
        assert sorted(losses) == sorted(want), where
        for key in want:
            _close(losses[key], want[key], f'{where} {key}')
        for name, param in head_params.items():
            _close(param.grad, ref_params[name].grad, f'{where} gradient of {name}')
        optim.step()
        with torch.no_grad():
            for param in ref_params.values():
                if param.grad is not None:
                    param -= 0.1 * param.grad
                    param.grad = None
        if hook_flush:
            head.flush_memories()
            for mem in ref.memories.values():
                mem.flush(where)
        state = head.state_dict()
        for key, value in ref.state().items():
            _close(state[key], value, f'{where} {key}')
    neck.eval()
    head.eval()
    ref.neck.eval()
    x = torch.randn(7, DIM, *(() if vector else (3, 3)), generator=gen)
    with torch.no_grad():
        feats = feats_of(x)
        scores = head.memory_scores(feats)
        preds = head.predict(feats)
    want_scores, want_labels, want_conf = ref.predict(x, f'{case} inference')
    _close(scores, want_scores, f'{case} inference scores')
    for i, (pred, label) in enumerate(zip(preds, want_labels)):
        assert pred.pred_label.tolist() == label.tolist(), f'{case} inference sample {i}'
    if want_conf is None:
        assert 'open_confidence' not in preds[0]
    else:
        _close(torch.stack([p.open_confidence for p in preds]), want_conf,
               f'{case} open confidence')
    state = head.state_dict()
    want = ref.state()
    assert sorted(state) == sorted(want), case
    for key, value in want.items():
        _close(state[key], value, f'{case} final {key}')
    return margins


def _float64(fn, *args):
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return fn(*args)
    finally:
        torch.set_default_dtype(default)


@pytest.mark.parametrize('case', sorted(CASES))
def test_preset_equals_the_equations_written_out(case):
    margins = _float64(_run_side_by_side, case)
    assert {'n-th nearest slot', 'hard negative'} <= set(margins.smallest), case
    if case == 'keys_normalized':
        assert 'nearest slot of a merge' in margins.smallest   # Eq. 4 merges were applied
    kind, (gap, where) = min(margins.smallest.items(), key=lambda kv: kv[1][0])
    assert gap >= MARGIN, (f'{case}: a {kind} is decided by a relative gap of {gap:.2e} '
                           f'({where}), under MARGIN={MARGIN}: another CPU\'s round-off could '
                           'choose otherwise; change the inputs')


def test_preset_readers_hold_the_heads_memories_and_copies_keep_the_sharing():
    head = IEMHead(C, DIM, **BASE)
    assert head.global_reader.memory is head.global_memory
    assert head.local_reader.memory is head.local_memory
    assert [name for name, _ in head.readers()] == ['global_memory', 'local_memory']
    assert not any('reader' in name for name, _ in head.named_modules())    # plain attributes
    assert head.global_memory.keys.requires_grad and head.local_memory.values.requires_grad
    assert (head.global_reader.region_reduce, head.global_reader.write_value) == ('mean', 'prob')
    dup = copy.deepcopy(head).double()
    assert dup.global_reader.memory is dup.global_memory is not head.global_memory
    assert dup.local_reader.memory.keys.dtype == torch.float64
    no_local = IEMHead(C, DIM, use_local_memory=False, **BASE)
    assert no_local.local_memory is None and no_local.local_reader is None
    assert [name for name, _ in no_local.readers()] == ['global_memory']
    vector = IEMVectorHead(C, DIM, global_capacity=4, num_neighbors=2)
    assert vector.global_reader.memory is vector.global_memory and vector.local_reader is None
    # the standalone part keeps its own, untrained memory (ComposedClsHead's keys)
    reader = EpisodicMemoryReader(C, DIM, capacity=4, num_neighbors=2)
    assert all(k.startswith('memory.') for k in reader.state_dict())
    assert not any(p.requires_grad for p in reader.parameters())


def test_shared_functions_and_region_reads_against_hand_computations():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    torch.testing.assert_close(class_values(logits), logits.softmax(1))
    torch.testing.assert_close(class_values(logits, activation='sigmoid'), logits.sigmoid())
    torch.testing.assert_close(class_values(logits, 'logit', 'sigmoid'), logits)
    read = torch.tensor([[0.2, -0.1, 0.6], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(normalize_reads(read),
                               torch.tensor([[0.25, 0.0, 0.75], [0.0, 0.0, 0.0]]))
    probs = logits.softmax(1)
    torch.testing.assert_close(average_scores(probs, 0.5, [(0.3, read), (0.2, 2 * read)], 1.0),
                               0.5 * probs + 0.3 * read + 0.4 * read)
    # a region-set reader: writes share the sample's value, reads combine the regions
    owner = torch.nn.Module()
    reader = EpisodicMemoryReader(3, 2, capacity=8, num_neighbors=2, region_reduce='max',
                                  normalize_memory_scores=True, write_value='logit',
                                  state_owner=owner, state_name='local_memory')
    assert owner.local_memory is reader.memory and list(owner.state_dict())
    regions = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0))
    reader.write(regions, logits, torch.tensor([1, 2]), apply=False)
    assert int(reader.memory.num_valid().sum()) == 0                     # staged
    reader.memory.flush()
    assert reader.memory.num_valid().tolist() == [0, 3, 3]
    assert sorted(reader.memory.values[reader.memory.valid].tolist()) == [2.0] * 3 + [3.0] * 3
    queries = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(1))
    raw = reader.memory.read_all(queries, 'class').amax(1)
    torch.testing.assert_close(reader.read(queries), normalize_reads(raw))
    torch.testing.assert_close(reader.read(queries, 'keys', False),
                               reader.memory.read_all(queries, 'keys').amax(1))
    reads = reader.read_classes(queries, torch.tensor([1, 2, 1, 2]))
    torch.testing.assert_close(reads, reader.memory.read(queries, torch.tensor([1, 2, 1, 2]),
                                                         update_age=False).amax(1))
    # IEM's memory loss (Eq. 14-16) over positive and negative groups; an empty side is 0
    pos_c, neg_c = torch.tensor([1, 2]), torch.tensor([1])
    want = ((reads[:2] - 1).pow(2).mean() + reads[2:3].pow(2).mean())
    torch.testing.assert_close(reader.regression_loss(queries[:2], pos_c, queries[2:3], neg_c),
                               want)
    torch.testing.assert_close(reader.regression_loss(queries[:2], pos_c, queries[:0],
                                                      neg_c[:0]), (reads[:2] - 1).pow(2).mean())
    zero = IEMHead(C, DIM, **BASE).local_reader.zero_loss()  # trainable: kept in the graph
    assert float(zero.detach()) == 0 and zero.requires_grad
    with pytest.raises(ValueError, match='open confidence'):
        reader.confidence(queries[:, 0], 'score')
    with pytest.raises(ValueError, match='region_reduce'):
        EpisodicMemoryReader(3, 2, region_reduce='sum')
