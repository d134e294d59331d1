"""EpisodicMemory (IEM Eq. 1-4): reads vs brute force, hand-built writes, DDP, eval purity."""
import itertools

import pytest
import torch

from lt_plugins.memory.episodic import EpisodicMemory
from tests.dist_utils import run_distributed


def _filled(num_classes=4, dim=3, capacity=6, n=3, seed=0, dtype=torch.float64,
            valid_counts=(6, 2, 0, 4)):
    """Memory with random keys/values; class c has valid_counts[c] valid (scattered) slots."""
    gen = torch.Generator().manual_seed(seed)
    mem = EpisodicMemory(num_classes, dim, capacity=capacity, num_neighbors=n).to(dtype)
    with torch.no_grad():
        mem.keys.copy_(torch.randn(num_classes, capacity, dim, generator=gen, dtype=dtype))
        mem.values.copy_(torch.rand(num_classes, capacity, generator=gen, dtype=dtype))
    for c, count in enumerate(valid_counts):
        slots = torch.randperm(capacity, generator=gen)[:count]
        mem.valid[c, slots] = True
    return mem


def _brute_read(keys, values, valid, query, cls, n, delta, empty=0.0):
    """Eq. 1-2 for one query, one class: explicit sort over the valid slots."""
    idx = valid[cls].nonzero().squeeze(1)
    if idx.numel() == 0:
        return torch.tensor(empty, dtype=keys.dtype)
    d = ((keys[cls, idx] - query) ** 2).sum(-1)
    order = torch.argsort(d, stable=True)[:n]
    s = 1.0 / (d[order] + delta)
    return (s * values[cls, idx][order]).sum() / s.sum()


@pytest.mark.parametrize('classes', [[0, 1, 2, 3, 0, 1, 2, 3],     # balanced
                                     [0, 0, 0, 3, 0, 0, 0, 2],     # skewed: split buckets
                                     [1, 1, 1, 1, 1, 1, 1, 1]])
def test_read_matches_brute_force_partial_and_empty_classes(classes):
    mem = _filled()
    gen = torch.Generator().manual_seed(1)
    queries = torch.randn(8, 2, 3, generator=gen, dtype=torch.float64)
    classes = torch.tensor(classes)
    out = mem.read(queries, classes)
    assert out.shape == (8, 2)
    ref = torch.stack([torch.stack([
        _brute_read(mem.keys.detach(), mem.values.detach(), mem.valid, queries[g, r],
                    int(classes[g]), mem.num_neighbors, mem.delta) for r in range(2)])
        for g in range(8)])
    torch.testing.assert_close(out, ref)
    assert torch.isfinite(out).all()
    assert (out[classes == 2] == 0).all()                  # empty class -> empty_value
    # (G, D) queries give (G,)
    torch.testing.assert_close(mem.read(queries[:, 0], classes), ref[:, 0])


def test_read_gradients_match_reference_and_empty_class_is_nan_free():
    mem = _filled()
    gen = torch.Generator().manual_seed(2)
    queries = torch.randn(6, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    classes = torch.tensor([0, 1, 2, 3, 0, 3])
    mem.read(queries, classes).pow(2).sum().backward()

    keys = mem.keys.detach().clone().requires_grad_(True)
    values = mem.values.detach().clone().requires_grad_(True)
    q_ref = queries.detach().clone().requires_grad_(True)
    ref = torch.stack([_brute_read(keys, values, mem.valid, q_ref[g], int(classes[g]),
                                   mem.num_neighbors, mem.delta) for g in range(6)])
    ref.pow(2).sum().backward()
    torch.testing.assert_close(mem.keys.grad, keys.grad)
    torch.testing.assert_close(mem.values.grad, values.grad)
    torch.testing.assert_close(queries.grad, q_ref.grad)
    assert mem.keys.grad[2].abs().sum() == 0 and torch.isfinite(mem.keys.grad).all()
    assert mem.values.grad.abs().sum() > 0 and mem.keys.grad.abs().sum() > 0


def test_read_ties():
    mem = EpisodicMemory(1, 2, capacity=5, num_neighbors=3).double()
    with torch.no_grad():   # four keys at distance 1 from the origin, one at distance 4
        mem.keys[0] = torch.tensor([[1., 0], [0, 1], [-1, 0], [0, -1], [2, 0]])
        mem.values[0] = torch.tensor([0.2, 0.2, 0.2, 0.8, 0.9], dtype=torch.float64)
    mem.valid[0, :] = True
    q = torch.zeros(1, 2, dtype=torch.float64)
    # a tie at the top-n boundary: any 3 of the 4 tied slots are admissible
    got = float(mem.read(q, torch.tensor([0])).detach())
    admissible = {round(sum(c) / 3, 10) for c in itertools.combinations([.2, .2, .2, .8], 3)}
    assert round(got, 10) in admissible
    # ties fully inside the top-n: exact
    mem.num_neighbors = 4
    torch.testing.assert_close(mem.read(q, torch.tensor([0])),
                               torch.tensor([(0.6 + 0.8) / 4], dtype=torch.float64))


def test_read_all_equals_per_class_reads_with_and_without_chunks():
    mem = _filled(valid_counts=(6, 1, 0, 3))
    gen = torch.Generator().manual_seed(3)
    queries = torch.randn(5, 4, 3, generator=gen, dtype=torch.float64)
    full = mem.read_all(queries)
    assert full.shape == (5, 4, 4)
    for c in range(4):
        per_class = mem.read(queries, torch.full((5, ), c))
        torch.testing.assert_close(full[..., c], per_class)
    mem.max_read_elements = 1      # one query per chunk
    torch.testing.assert_close(mem.read_all(queries), full)
    torch.testing.assert_close(mem.read_all(queries[:, 0]), full[:, 0])


def _brute_read_all_classes(mem, query):
    """'all' normalisation for one query: every class's top-n weighted values over the total
    similarity of all classes' top-n slots (explicit sort per class)."""
    nums, dens = [], []
    for cls in range(mem.num_classes):
        idx = mem.valid[cls].nonzero().squeeze(1)
        d = ((mem.keys.detach()[cls, idx] - query) ** 2).sum(-1)
        order = torch.argsort(d, stable=True)[:mem.num_neighbors]
        s = 1.0 / (d[order] + mem.delta)
        nums.append((s * mem.values.detach()[cls, idx][order]).sum())
        dens.append(s.sum())
    return torch.stack(nums) / torch.stack(dens).sum()


def test_read_all_over_classes_matches_brute_force_and_errors():
    mem = _filled(valid_counts=(6, 1, 0, 3))
    gen = torch.Generator().manual_seed(4)
    queries = torch.randn(5, 2, 3, generator=gen, dtype=torch.float64)
    out = mem.read_all(queries, reading='all')
    assert out.shape == (5, 2, 4)
    ref = torch.stack([torch.stack([_brute_read_all_classes(mem, queries[b, r])
                                    for r in range(2)]) for b in range(5)])
    torch.testing.assert_close(out, ref)
    assert (out[..., 2] == 0).all()                       # empty class scores 0
    assert (out.sum(-1) <= 1 + 1e-12).all()               # values in [0, 1]: mass <= 1
    # a class whose slots sit on the query takes (almost) all the mass; per-class
    # normalisation would score every class by its typical value instead
    near = mem.keys.detach()[3, mem.valid[3]][0]
    scores = mem.read_all(near.view(1, 3), reading='all')[0]
    assert scores.argmax() == 3
    mem.max_read_elements = 1
    torch.testing.assert_close(mem.read_all(queries, reading='all'), out)
    with pytest.raises(ValueError, match='reading'):
        mem.read_all(queries, reading='softmax')
    # 'keys': the same with every value 1, i.e. each class's share of the similarity mass
    saved = mem.values.detach().clone()
    with torch.no_grad():
        mem.values.fill_(1.0)
    ones_ref = torch.stack([torch.stack([_brute_read_all_classes(mem, queries[b, r])
                                         for r in range(2)]) for b in range(5)])
    with torch.no_grad():
        mem.values.copy_(saved)
    keys_read = mem.read_all(queries, reading='keys')
    torch.testing.assert_close(keys_read, ones_ref)
    torch.testing.assert_close(keys_read.sum(-1), torch.ones(5, 2, dtype=torch.float64))
    torch.testing.assert_close(mem.values.detach(), saved)          # values untouched
    empty = EpisodicMemory(2, 3, capacity=4, num_neighbors=2)
    for reading in ('all', 'keys'):
        assert (empty.read_all(torch.randn(3, 3), reading=reading) == 0).all()


def _write(mem, rows, values, classes):
    mem.write(torch.tensor(rows, dtype=mem.keys.dtype),
              torch.tensor(values, dtype=mem.values.dtype),
              torch.tensor(classes))
    mem.flush()


def test_write_dedupe_and_age_eviction_hand_built_sequence():
    mem = EpisodicMemory(2, 2, capacity=3, num_neighbors=1, gamma=0.99).double()
    _write(mem, [[1., 0], [0, 1], [5, 5]], [.5, .6, .9], [0, 0, 1])
    assert mem.valid.tolist() == [[True, True, False], [True, False, False]]
    assert mem.ages.tolist() == [[0, 0, 0], [0, 0, 0]]
    assert mem.pop_overwritten().sum() == 3

    # [1, 0] exists in class 0 -> Eq. 4 update, no append; [2, 2] appends to the free slot
    _write(mem, [[1., 0], [2, 2]], [1.0, .3], [0, 0])
    torch.testing.assert_close(mem.values[0].detach(),
                               torch.tensor([.99 * 1.0 + .01 * .5, .6, .3], dtype=torch.float64))
    assert mem.ages.tolist() == [[0, 1, 0], [1, 0, 0]]
    assert mem.pop_overwritten()[0].tolist() == [False, False, True]

    # class 0 is full: [3, 3] replaces the oldest slot (slot 1, age 2)
    _write(mem, [[3., 3]], [.4], [0])
    assert mem.ages.tolist() == [[1, 0, 1], [2, 0, 0]]
    torch.testing.assert_close(mem.keys[0].detach(),
                               torch.tensor([[1., 0], [3, 3], [2, 2]], dtype=torch.float64))
    assert mem.values[0, 1].item() == pytest.approx(.4)
    assert mem.pop_overwritten()[0].tolist() == [False, True, False]

    # a training read resets the ages of the slot it used (n = 1: the nearest, slot 2)
    mem.train()
    mem.read(torch.tensor([[2.1, 2.0]], dtype=torch.float64), torch.tensor([0]))
    mem.flush()
    assert mem.ages[0].tolist() == [2, 1, 0]
    # next append evicts slot 0 (age 3 after ageing), not the freshly read slot 2
    _write(mem, [[-1., -1]], [.7], [0])
    assert mem.keys[0, 0].tolist() == [-1., -1.]
    assert mem.ages[0].tolist() == [0, 2, 1]


def test_write_tolerance_duplicates_in_one_call_and_overflow():
    mem = EpisodicMemory(1, 2, capacity=3, num_neighbors=1, dedupe_tol=1e-4).double()
    _write(mem, [[0., 0]], [.2], [0])
    # within tolerance (squared distance 0.5e-4) -> update; just above (2e-4) -> append
    _write(mem, [[0.005, 0.005], [0.01, 0.01]], [1.0, .5], [0, 0])
    assert mem.valid[0].tolist() == [True, True, False]
    assert mem.values[0, 0].item() == pytest.approx(.99 * 1.0 + .01 * .2)
    assert mem.keys[0, 0].tolist() == [0., 0.]          # key kept, value updated
    # two new keys hit one slot: the last wins; bitwise-equal new keys merge, last wins
    _write(mem, [[0., 0], [0., 0.001], [7., 7], [7., 7]], [.1, .3, .4, .6], [0, 0, 0, 0])
    assert mem.values[0, 0].item() == pytest.approx(.99 * .3 + .01 * (.99 + .002))
    assert mem.valid[0].all()
    assert mem.keys[0, 2].tolist() == [7., 7.] and mem.values[0, 2].item() == pytest.approx(.6)
    # more new keys than capacity in one flush: the last `capacity` are kept
    mem.reset()
    _write(mem, [[float(i), 0.] for i in range(5)], [i / 10 for i in range(5)], [0] * 5)
    assert sorted(mem.keys[0, :, 0].tolist()) == [2., 3., 4.]


def test_grouped_writes_and_values_per_key():
    mem = EpisodicMemory(3, 2, capacity=4, num_neighbors=2)
    keys = torch.arange(12, dtype=torch.float32).view(2, 3, 2)      # 2 images x 3 regions
    mem.write(keys, torch.tensor([.5, .7]), torch.tensor([2, 0]))
    mem.flush()
    assert mem.num_valid().tolist() == [3, 0, 3]
    torch.testing.assert_close(mem.keys[2, :3].detach(), keys[0])
    torch.testing.assert_close(mem.values[0, :3].detach(), torch.full((3, ), .7))


def test_eval_reads_leave_memory_untouched():
    mem = _filled(dtype=torch.float32)
    mem.ages.random_(0, 10)
    before = {k: v.clone() for k, v in mem.state_dict().items()}
    mem.eval()
    q = torch.randn(4, 3)
    mem.read(q, torch.tensor([0, 1, 2, 3]))
    mem.read_all(q)
    assert not mem.flush()
    for k, v in mem.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_errors_and_bytes():
    with pytest.raises(ValueError, match='capacity=0'):
        EpisodicMemory(3, 4, capacity=0, num_neighbors=1)
    with pytest.raises(ValueError, match='num_neighbors=10'):
        EpisodicMemory(3, 4, capacity=5, num_neighbors=10)
    mem = EpisodicMemory(3, 4, capacity=5, num_neighbors=2)
    with pytest.raises(ValueError, match='dim=4'):
        mem.read(torch.randn(2, 7), torch.tensor([0, 1]))
    assert mem.memory_bytes() == 3 * 5 * 4 * 4 + 3 * 5 * 4 + 3 * 5 * 8 + 3 * 5 + 3 * 5 * 4
    assert mem.memory_bytes(2) - mem.memory_bytes() == 2 * (3 * 5 * 4 * 4 + 3 * 5 * 4)
    assert 'MiB' in repr(mem)


# --------------------------------------------------------------------- distributed
def _stream(seed=0, steps=4, batch=6, num_classes=3, dim=4):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        keys = torch.randn(batch, 2, dim, generator=gen).round(decimals=1)
        keys[1] = keys[0]                         # bitwise duplicate inside the batch
        yield (keys, torch.rand(batch, generator=gen),
               torch.randint(0, num_classes, (batch, ), generator=gen),
               torch.randn(batch, 2, dim, generator=gen))


def _run(rank, world_size):
    torch.manual_seed(0)
    mem = EpisodicMemory(3, 4, capacity=16, num_neighbors=2)
    mem.train()
    for keys, values, classes, queries in _stream():
        share = keys.size(0) // world_size
        part = slice(rank * share, (rank + 1) * share)
        mem.read(queries[part], classes[part])
        mem.write(keys[part], values[part], classes[part])
        mem.flush()
    return {k: v.clone() for k, v in mem.state_dict().items()}


def test_two_process_gloo_matches_single_process_on_global_batch():
    results = run_distributed(_run)
    single = _run(0, 1)
    for key in single:
        assert torch.equal(results[0][key], results[1][key]), key
        assert torch.equal(results[0][key], single[key]), key
    assert single['valid'].any() and (single['ages'] > 0).any()


def _merge_reference(keys, values, valid, new_keys, new_vals, new_cls, radius, gamma,
                     relative=False):
    """Loop reference of a flush with a merge radius (matches against the pre-flush keys,
    the last new key hitting a slot wins, the others fill free slots in slot order)."""
    keys, values, valid = keys.clone(), values.clone(), valid.clone()
    stored = keys.clone()
    was_valid = valid.clone()
    hits, appends = {}, []
    for k, v, c in zip(new_keys, new_vals, new_cls.tolist()):
        best, best_s = None, None
        for s in range(keys.shape[1]):
            if was_valid[c, s]:
                d = float(((k - stored[c, s])**2).sum())
                if best is None or d < best:
                    best, best_s = d, s
        limit = radius**2 * (float((stored[c, best_s]**2).sum()) if relative and best is not None
                             else 1.0)
        if best is not None and best <= max(limit, 1e-6):
            hits[(c, best_s)] = float(v)
        else:
            appends.append((k, float(v), c))
    written = torch.full(values.shape, float('nan'), dtype=values.dtype)  # NaN: unchanged
    for (c, s), v in hits.items():
        values[c, s] = gamma * v + (1 - gamma) * values[c, s]
        written[c, s] = values[c, s]
    for k, v, c in appends:
        s = int((~valid[c]).nonzero()[0])
        keys[c, s], values[c, s], valid[c, s], written[c, s] = k, v, True, v
    return keys, values, valid, written


@pytest.mark.parametrize('radius,relative', [(0.3, False), (None, False), (0.02, True)])
def test_merge_radius_matches_brute_force(radius, relative):
    gen = torch.Generator().manual_seed(3)
    mem = EpisodicMemory(3, 4, capacity=40, num_neighbors=2, gamma=0.9,
                         merge_radius=radius, merge_relative=relative).double()
    stored = torch.randn(3, 6, 4, generator=gen, dtype=torch.float64) * 3
    mem.write(stored.reshape(-1, 4), torch.rand(18, generator=gen, dtype=torch.float64),
              torch.arange(3).repeat_interleave(6))
    mem.flush()
    # new keys: half near a stored key of their class (within 0.1-0.25), half far away
    cls = torch.randint(0, 3, (30, ), generator=gen)
    base = stored[cls, torch.randint(0, 6, (30, ), generator=gen)]
    noise = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    noise = noise / noise.norm(dim=1, keepdim=True) * (0.1 + 0.15 * torch.rand(
        30, 1, generator=gen, dtype=torch.float64))
    far = torch.arange(30) % 2 == 1
    new = torch.where(far.view(-1, 1), base + 10 + noise, base + noise)
    vals = torch.rand(30, generator=gen, dtype=torch.float64)
    ref = _merge_reference(mem.keys.detach(), mem.values.detach(), mem.valid, new, vals, cls,
                           radius or 0.0, 0.9, relative)
    before_written = mem.written_values.clone()
    mem.write(new, vals, cls)
    mem.flush()
    torch.testing.assert_close(mem.keys.detach(), ref[0])
    torch.testing.assert_close(mem.values.detach(), ref[1])
    assert torch.equal(mem.valid, ref[2])
    written = torch.where(torch.isnan(ref[3]), before_written, ref[3])
    torch.testing.assert_close(mem.written_values, written, equal_nan=True)
    merged = int(mem.valid.sum()) - 18
    if radius is None:
        assert merged == 30          # nothing is ever within 1e-6: every key takes a slot
    elif not relative:
        assert merged == 15          # only the far half appends
    else:   # 0.02 x the key norm (~0.12 here, absolute 0.02 would merge none): some near
        assert 15 < merged < 30      # keys merge, as the reference says


def test_merge_radius_rejects_negative():
    with pytest.raises(ValueError, match='merge_radius'):
        EpisodicMemory(2, 2, capacity=2, num_neighbors=1, merge_radius=-0.1)


def test_value_statistics_drift_and_old_checkpoints():
    mem = EpisodicMemory(3, 2, capacity=3, num_neighbors=1).double()
    _write(mem, [[0., 0], [1., 1], [5., 5]], [.2, .4, .9], [0, 0, 2])
    with torch.no_grad():       # what back-propagation would do to the values
        mem.values[0, 0] += 0.1
        mem.values[2, 0] -= 0.3
    stats = mem.value_statistics()
    torch.testing.assert_close(stats['value_mean'][[0, 2]],
                               torch.tensor([(.3 + .4) / 2, .6], dtype=torch.float64))
    assert torch.isnan(stats['value_mean'][1])
    torch.testing.assert_close(stats['drift_mean'][[0, 2]],
                               torch.tensor([.05, -.3], dtype=torch.float64))
    torch.testing.assert_close(stats['drift_abs_mean'][[0, 2]],
                               torch.tensor([.05, .3], dtype=torch.float64))
    # a checkpoint saved before `written_values` existed loads strictly, drift from the load
    old = {k: v for k, v in mem.state_dict().items() if k != 'written_values'}
    fresh = EpisodicMemory(3, 2, capacity=3, num_neighbors=1).double()
    assert not fresh.load_state_dict(old).missing_keys
    assert fresh.value_statistics()['drift_abs_mean'][[0, 2]].tolist() == [0.0, 0.0]
    torch.testing.assert_close(fresh.value_statistics()['value_mean'][[0, 2]],
                               stats['value_mean'][[0, 2]])
    mem.reset()
    assert not mem.written_values.any()
