"""Bad input to the memory banks: every entry point refuses a malformed batch with a
ValueError naming the argument before touching state, skips non-finite rows with a logged
warning, and treats an empty batch as a no-op (state, counters and staged writes unchanged)."""
import logging

import pytest
import torch
from mmengine.logging import MMLogger

from lt_plugins.memory import EpisodicMemory, RebalancedFIFOMemory

NAN, INF = float('nan'), float('inf')


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_log():
    logger = MMLogger.get_instance('lt_plugins_bad_input_test')  # becomes the current one
    handler = _Records()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_unchanged(module, before):
    after = module.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        assert torch.equal(after[key], before[key]), key


# ----------------------------------------------------------------- RebalancedFIFOMemory
def _fifo():
    mem = RebalancedFIFOMemory(size=6, dim=4, num_classes=3, beta=0.0)
    gen = torch.Generator().manual_seed(0)
    mem.enqueue(torch.randn(4, 4, generator=gen), torch.tensor([0, 1, 2, 0]))
    return mem


FIFO_REJECTED = [
    # (case, feats, labels, message)
    ('size divides dim', torch.randn(4, 2), torch.tensor([0, 1]), r'`feats`.*\(B, dim=4\)'),
    ('dim + 1', torch.randn(2, 5), torch.tensor([0, 1]), r'`feats`.*\(B, dim=4\).*\(2, 5\)'),
    ('3-d feats', torch.randn(2, 4, 1), torch.tensor([0, 1]), r'`feats`.*\(2, 4, 1\)'),
    ('integer feats', torch.ones(2, 4, dtype=torch.long), torch.tensor([0, 1]),
     r'`feats`.*floating-point'),
    ('float labels', torch.randn(2, 4), torch.tensor([0.7, 1.2]), r'`labels`.*integer'),
    ('bool labels', torch.randn(2, 4), torch.tensor([True, False]), r'`labels`.*integer'),
    ('2-d labels', torch.randn(2, 4), torch.tensor([[0], [1]]), r'`labels`.*\(2,\)'),
    ('too few labels', torch.randn(3, 4), torch.tensor([0, 1]), r'`labels`.*\(3,\)'),
    ('label -1', torch.randn(2, 4), torch.tensor([0, -1]), r'`labels`.*\[0, num_classes=3\)'),
    ('label C', torch.randn(2, 4), torch.tensor([3, 0]), r'`labels`.*\[0, num_classes=3\)'),
]


@pytest.mark.parametrize('case,feats,labels,message', FIFO_REJECTED,
                         ids=[c[0] for c in FIFO_REJECTED])
def test_fifo_rejects_bad_input_before_touching_state(case, feats, labels, message):
    mem = _fifo()
    before = _snapshot(mem)
    with pytest.raises(ValueError, match=message):
        mem.enqueue(feats, labels)
    _assert_unchanged(mem, before)


FIFO_SKIPPED = [
    # (case, feats rows that are bad, number of bad rows)
    ('nan row', [1], NAN),
    ('inf row', [0, 2], INF),
    ('-inf entry', [3], -INF),
]


@pytest.mark.parametrize('case,bad_rows,bad', FIFO_SKIPPED, ids=[c[0] for c in FIFO_SKIPPED])
def test_fifo_skips_non_finite_rows_with_a_warning(case, bad_rows, bad, warnings_log):
    mem, ref = _fifo(), _fifo()
    feats = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([2, 1, 0, 1])
    poisoned = feats.clone()
    poisoned[bad_rows, 1] = bad
    mem.enqueue(poisoned, labels)
    keep = torch.ones(4, dtype=torch.bool)
    keep[bad_rows] = False
    ref.enqueue(feats[keep], labels[keep])  # the same as offering only the finite rows
    _assert_unchanged(mem, _snapshot(ref))
    assert torch.isfinite(mem.feats).all()
    assert any(f'skipped {len(bad_rows)} of 4 features' in m for m in warnings_log)


@pytest.mark.parametrize('case,feats,labels', [
    ('empty', torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)),
    ('all non-finite', torch.full((2, 4), NAN), torch.tensor([0, 1])),
], ids=['empty', 'all non-finite'])
def test_fifo_empty_batch_is_a_no_op(case, feats, labels):
    mem = _fifo()
    before = _snapshot(mem)
    mem.enqueue(feats, labels)
    _assert_unchanged(mem, before)  # step included: the admission sequence is not shifted


def test_fifo_nan_batch_does_not_poison_the_memory_loss():
    """MBJ: after one NaN batch, the memory loss of clean batches stays finite."""
    from lt_plugins.models.heads.mbj_cls_head import MBJClsHead
    head = MBJClsHead(num_classes=3, in_channels=4, memory=dict(type='RebalancedFIFOMemory',
                                                                beta=0.0))
    head.memory_enabled = True
    head.memory.enqueue(torch.full((2, 4), NAN), torch.tensor([0, 1]))
    loss = head._feature_memory_loss(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    assert torch.isfinite(loss)


# ------------------------------------------------------------------------ EpisodicMemory
def _episodic():
    mem = EpisodicMemory(num_classes=3, dim=4, capacity=4, num_neighbors=2)
    gen = torch.Generator().manual_seed(0)
    mem.write(torch.randn(6, 4, generator=gen), torch.rand(6, generator=gen),
              torch.tensor([0, 1, 2, 0, 1, 2]))
    mem.flush()
    mem.train()
    return mem


def _staged(mem):
    return (len(mem._pending), mem._step_pending,
            None if mem._read_mask is None else mem._read_mask.clone())


EPISODIC_REJECTED = [
    # (case, method, args, message)
    ('read class -1', 'read', (torch.randn(2, 4), torch.tensor([0, -1])),
     r'read: `classes`.*\[0, num_classes=3\)'),
    ('read class C', 'read', (torch.randn(2, 4), torch.tensor([3, 0])),
     r'read: `classes`.*\[0, num_classes=3\)'),
    ('read float classes', 'read', (torch.randn(2, 4), torch.tensor([0., 1.])),
     r'read: `classes`.*integer'),
    ('read classes per query', 'read', (torch.randn(2, 4), torch.tensor([0, 1, 2])),
     r'read: `classes`.*\(2,\)'),
    ('read wrong dim', 'read', (torch.randn(2, 5), torch.tensor([0, 1])),
     r'read: `queries`.*dim=4'),
    ('read integer queries', 'read', (torch.ones(2, 4, dtype=torch.long),
                                      torch.tensor([0, 1])), r'read: `queries`.*floating'),
    ('read_all wrong dim', 'read_all', (torch.randn(2, 3), ), r'read_all: `queries`.*dim=4'),
    ('write class C', 'write', (torch.randn(2, 4), torch.rand(2), torch.tensor([1, 3])),
     r'write: `classes`.*\[0, num_classes=3\)'),
    ('write class -1', 'write', (torch.randn(2, 4), torch.rand(2), torch.tensor([-1, 0])),
     r'write: `classes`.*\[0, num_classes=3\)'),
    ('write float classes', 'write', (torch.randn(2, 4), torch.rand(2),
                                      torch.tensor([0.5, 1.5])), r'write: `classes`.*integer'),
    ('write wrong key dim', 'write', (torch.randn(2, 8), torch.rand(2), torch.tensor([0, 1])),
     r'write: `keys`.*dim=4'),
    ('write values shape', 'write', (torch.randn(2, 4), torch.rand(4), torch.tensor([0, 1])),
     r'write: `values`.*\(2,\)'),
    ('write integer values', 'write', (torch.randn(2, 4), torch.ones(2, dtype=torch.long),
                                       torch.tensor([0, 1])), r'write: `values`.*floating'),
]


@pytest.mark.parametrize('case,method,args,message', EPISODIC_REJECTED,
                         ids=[c[0] for c in EPISODIC_REJECTED])
def test_episodic_rejects_bad_input_before_touching_state(case, method, args, message):
    mem = _episodic()
    mem.read(torch.randn(1, 4), torch.tensor([1]))  # a staged read the error must not drop
    before, staged = _snapshot(mem), _staged(mem)
    with pytest.raises(ValueError, match=message):
        getattr(mem, method)(*args)
    _assert_unchanged(mem, before)
    after = _staged(mem)
    assert after[:2] == staged[:2] and torch.equal(after[2], staged[2])
    # the memory is not stuck: the next step flushes and a valid write lands
    mem.write(torch.ones(1, 4), torch.ones(1), torch.tensor([2]))
    assert mem.flush()
    assert bool((mem.keys[2] == 1).all(1).any())


@pytest.mark.parametrize('case,poison', [
    ('nan key', lambda k, v: k.__setitem__((1, 2), NAN)),
    ('inf key', lambda k, v: k.__setitem__((0, 0), INF)),
    ('nan value', lambda k, v: v.__setitem__(2, NAN)),
    ('inf value', lambda k, v: v.__setitem__(1, -INF)),
], ids=['nan key', 'inf key', 'nan value', 'inf value'])
def test_episodic_skips_non_finite_groups_with_a_warning(case, poison, warnings_log):
    mem, ref = _episodic(), _episodic()
    gen = torch.Generator().manual_seed(3)
    keys, values = torch.randn(3, 4, generator=gen), torch.rand(3, generator=gen)
    classes = torch.tensor([0, 0, 1])
    bad_keys, bad_values = keys.clone(), values.clone()
    poison(bad_keys, bad_values)
    keep = torch.isfinite(bad_keys).all(1) & torch.isfinite(bad_values)
    assert int(keep.sum()) == 2
    mem.write(bad_keys, bad_values, classes)
    ref.write(keys[keep], values[keep], classes[keep])
    assert mem.flush() and ref.flush()
    _assert_unchanged(mem, _snapshot(ref))
    assert torch.isfinite(mem.keys).all() and torch.isfinite(mem.values).all()
    assert any('skipped 1 of 3 key groups' in m for m in warnings_log)


def test_episodic_all_non_finite_regions_skip_the_group():
    mem = _episodic()
    keys = torch.randn(2, 3, 4)
    keys[0, 1, 0] = NAN  # one region of image 0
    mem.write(keys, torch.rand(2), torch.tensor([0, 1]))
    assert mem._pending[0][2].tolist() == [1]


def test_episodic_empty_batches_are_no_ops():
    mem = _episodic()
    before, staged = _snapshot(mem), _staged(mem)
    out = mem.read(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert out.shape == (0, )
    assert mem.read(torch.zeros(0, 3, 4), torch.zeros(0, dtype=torch.long)).shape == (0, 3)
    assert mem.read_all(torch.zeros(0, 4)).shape == (0, 3)
    assert mem.read_all(torch.zeros(0, 2, 4)).shape == (0, 2, 3)
    mem.write(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert _staged(mem)[:2] == staged[:2]
    assert not mem.flush()  # nothing staged: no ageing either
    _assert_unchanged(mem, before)


def _poisoned_ranks(rank, world_size):
    """Rank 0's batch has a NaN row, rank 1's an Inf key; each rank writes its half."""
    gen = torch.Generator().manual_seed(7)
    feats, labels = torch.randn(8, 4, generator=gen), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    feats[1, 0], feats[6, 3] = NAN, INF
    sl = slice(rank * 8 // world_size, (rank + 1) * 8 // world_size)
    fifo = RebalancedFIFOMemory(size=6, dim=4, num_classes=3, beta=0.0)
    fifo.enqueue(feats[sl], labels[sl])
    episodic = EpisodicMemory(num_classes=3, dim=4, capacity=4, num_neighbors=2)
    episodic.write(feats[sl], torch.rand(8, generator=gen)[sl], labels[sl])
    episodic.flush()
    return _snapshot(fifo), _snapshot(episodic)


def test_non_finite_rows_skipped_alike_on_every_rank():
    """Two ranks (threads exchanging through mmengine.dist) end with the same memories as
    one process fed the whole batch: the skip does not desynchronise the banks."""
    from tests.dist_utils import run_ranks_in_threads
    single = _poisoned_ranks(0, 1)
    for rank_state in run_ranks_in_threads(_poisoned_ranks):
        for expected, actual in zip(single, rank_state):
            assert expected.keys() == actual.keys()
            for key in expected:
                assert torch.equal(actual[key], expected[key]), key
    assert int(single[0]['step']) == 1 and single[0]['valid'].sum() == 6
    assert torch.isfinite(single[0]['feats']).all() and torch.isfinite(single[1]['keys']).all()
    assert int(single[1]['valid'].sum()) == 6  # 8 keys, 2 skipped


def _region_steps(world_size, rank, bad):
    """Three steps of 3-region key groups, 4 images per rank; on step ``s`` rank ``s % 2``'s
    whole batch is invalid (``bad='nan'``: every group has a NaN region; ``'empty'``: G = 0)
    while the other rank writes. Yields this rank's (keys, values, classes, queries)."""
    gen = torch.Generator().manual_seed(11)
    for step in range(3):
        keys = torch.randn(8, 3, 4, generator=gen)
        values = torch.rand(8, 3, generator=gen)
        classes = torch.randint(0, 3, (8, ), generator=gen)
        queries = torch.randn(8, 3, 4, generator=gen)
        if world_size == 1:
            parts = [slice(0, 4), slice(4, 8)]
        else:
            parts = [slice(rank * 4, rank * 4 + 4)]
        for r, part in zip(range(2) if world_size == 1 else [rank], parts):
            k, v, c, q = keys[part].clone(), values[part], classes[part], queries[part]
            if r == step % 2:
                if bad == 'nan':
                    k[:, step % 3, 1] = NAN
                else:
                    k, v, c = k[:0], v[:0], c[:0]
            yield k, v, c, q


def _regions_with_an_invalid_rank(rank, world_size, bad):
    mem = EpisodicMemory(num_classes=3, dim=4, capacity=5, num_neighbors=2)
    mem.train()
    batches = list(_region_steps(world_size, rank, bad))
    per_step = 2 if world_size == 1 else 1
    for step in range(3):
        for keys, values, classes, queries in batches[step * per_step:(step + 1) * per_step]:
            mem.read(queries, torch.zeros(queries.size(0), dtype=torch.long))
            mem.write(keys, values, classes)
        assert mem.flush()
    return _snapshot(mem)


@pytest.mark.parametrize('bad', ['nan', 'empty'])
def test_region_keys_gather_when_one_rank_has_no_valid_group(bad):
    """Two gloo processes, region keys (G, 3, D): each step one rank has no valid group to
    write (its keys would be (0, 1, D) against the writer's (n, 3, D) before the fix). No
    crash, both ranks equal, and equal to one process fed both halves."""
    from tests.dist_utils import run_distributed
    ranks = run_distributed(_regions_with_an_invalid_rank, bad)
    single = _regions_with_an_invalid_rank(0, 1, bad)
    for key in single:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        assert torch.equal(ranks[0][key], single[key]), key
    assert int(single['valid'].sum()) == 15  # 36 valid keys filled all 3 x 5 slots
    assert torch.isfinite(single['keys']).all()


def _mismatched_regions(rank, world_size):
    mem = EpisodicMemory(num_classes=3, dim=4, capacity=5, num_neighbors=2)
    regions = 3 if rank == 0 else 2
    mem.write(torch.randn(2, regions, 4), torch.rand(2), torch.tensor([0, 1]))
    try:
        mem.flush()
    except ValueError as exc:
        return str(exc)
    return None


def test_ranks_with_different_regions_per_group_raise_together():
    from tests.dist_utils import run_ranks_in_threads
    messages = run_ranks_in_threads(_mismatched_regions)
    assert all(m is not None and 'from 2 to 3 keys per group' in m for m in messages)
