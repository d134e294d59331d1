"""Class-aware samplers: class frequencies, DDP shards, determinism, progressive schedule."""
import numpy as np
import pytest
from mmengine.dataset import DefaultSampler
from mmengine.logging import MessageHub

from lt_plugins.datasets import samplers as samplers_mod
from lt_plugins.datasets.samplers import (ClassAwareSampler, ClassBalancedSampler,
                                          InstanceBalancedSampler,
                                          ProgressivelyBalancedSampler, SquareRootSampler)

COUNTS = np.array([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])  # CIFAR-10-LT IR100


class FakeDataset:
    """Anything with ``__len__`` and ``get_gt_labels()``."""

    def __init__(self, labels, num_classes=None):
        self.labels = np.asarray(labels, dtype=np.int64)
        if num_classes is not None:
            self.metainfo = dict(classes=tuple(str(i) for i in range(num_classes)))

    def __len__(self):
        return len(self.labels)

    def get_gt_labels(self):
        return self.labels


def lt_dataset(shuffle_labels=True):
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    if shuffle_labels:  # class blocks must not be assumed contiguous
        labels = np.random.default_rng(0).permutation(labels)
    return FakeDataset(labels)


def expected_probs(q):
    w = COUNTS.astype(np.float64) ** q
    return w / w.sum()


def assert_frequencies(labels, probs, n):
    """Every class frequency within 5 standard errors of its probability."""
    freq = np.bincount(labels, minlength=len(probs)) / n
    tol = 5 * np.sqrt(probs * (1 - probs) / n) + 1e-12
    assert np.all(np.abs(freq - probs) <= tol), (freq, probs, tol)


@pytest.mark.parametrize('cls, q', [(ClassBalancedSampler, 0.0), (SquareRootSampler, 0.5),
                                    (InstanceBalancedSampler, 1.0)])
def test_class_frequencies(cls, q):
    ds = lt_dataset()
    n = 200_000
    sampler = cls(ds, seed=3, num_samples=n)
    idx = np.array(list(sampler))
    assert len(idx) == len(sampler) == n
    assert_frequencies(ds.labels[idx], expected_probs(q), n)


def test_class_aware_q_matches_eq1():
    ds = lt_dataset()
    sampler = ClassAwareSampler(ds, seed=0, q=0.25)
    np.testing.assert_allclose(sampler.class_probs().numpy(), expected_probs(0.25))
    assert_frequencies(ds.labels[np.array(list(ClassAwareSampler(ds, seed=1, q=0.25,
                                                                 num_samples=100_000)))],
                       expected_probs(0.25), 100_000)


def test_instances_uniform_within_class():
    """The rarest class (50 images) under class-balanced sampling: each image ~1/500."""
    ds = lt_dataset()
    n = 200_000
    idx = np.array(list(ClassBalancedSampler(ds, seed=5, num_samples=n)))
    tail = np.flatnonzero(ds.labels == 9)
    hits = np.bincount(np.searchsorted(tail, idx[ds.labels[idx] == 9]), minlength=50)
    assert hits.sum() == pytest.approx(n / 10, rel=0.05)
    expected = hits.sum() / 50
    # chi-square with 49 dof: mean 49, sd ~10; 120 is far out in the tail
    assert ((hits - expected) ** 2 / expected).sum() < 120
    assert set(idx[ds.labels[idx] == 9]) == set(tail.tolist())


def test_empty_class_never_drawn():
    labels = np.array([0] * 30 + [2] * 5)  # class 1 has no image
    ds = FakeDataset(labels, num_classes=4)
    sampler = ClassBalancedSampler(ds, seed=0, num_samples=6000)
    np.testing.assert_allclose(sampler.class_probs().numpy(), [0.5, 0, 0.5, 0])
    drawn = labels[np.array(list(sampler))]
    assert set(drawn.tolist()) == {0, 2}
    assert abs((drawn == 2).mean() - 0.5) < 0.05


def test_instance_sampler_equals_default_sampler():
    ds = lt_dataset()
    for world_size in (1, 2, 3):
        for rank in range(world_size):
            ours = InstanceBalancedSampler(ds, seed=7, rank=rank, world_size=world_size)
            ref = DefaultSampler(ds, seed=7)
            ref.rank, ref.world_size = rank, world_size
            ref.num_samples = -(-len(ds) // world_size)
            ref.total_size = ref.num_samples * world_size
            for epoch in (0, 4):
                ours.set_epoch(epoch)
                ref.set_epoch(epoch)
                assert list(ours) == list(ref)
    one_epoch = list(InstanceBalancedSampler(ds, seed=1))
    assert sorted(one_epoch) == list(range(len(ds)))  # a permutation
    assert list(InstanceBalancedSampler(ds, shuffle=False, world_size=1, rank=0))[:5] == \
        [0, 1, 2, 3, 4]
    longer = list(InstanceBalancedSampler(ds, seed=1, num_samples=2 * len(ds) + 3))
    assert np.array_equal(np.bincount(longer[:2 * len(ds)]), np.full(len(ds), 2))


ALL = [InstanceBalancedSampler, ClassBalancedSampler, SquareRootSampler,
       ProgressivelyBalancedSampler]


def make(cls, ds, **kw):
    if cls is ProgressivelyBalancedSampler:
        kw.setdefault('max_epochs', 10)
    return cls(ds, **kw)


@pytest.mark.parametrize('cls', ALL)
@pytest.mark.parametrize('num_samples', [None, 1001])
def test_shards_disjoint_and_complete(cls, num_samples):
    ds = lt_dataset()
    shards = []
    for rank in range(2):
        s = make(cls, ds, seed=11, rank=rank, world_size=2, num_samples=num_samples)
        s.set_epoch(2)
        shards.append(list(s))
        assert len(shards[-1]) == len(s)
    whole = make(cls, ds, seed=11, rank=0, world_size=2, num_samples=num_samples)
    whole.set_epoch(2)
    draw = whole.global_indices().tolist()
    total = whole.total_size
    assert total % 2 == 0 and total >= (num_samples or len(ds))
    assert len(shards[0]) == len(shards[1]) == total // 2
    # positions rank::2 of one draw: disjoint slots that interleave back into the draw
    assert shards[0] == draw[0::2] and shards[1] == draw[1::2]
    if cls is InstanceBalancedSampler and num_samples is None:
        assert set(shards[0]).isdisjoint(set(shards[1][:-1]))  # last slot is padding
        assert set(shards[0]) | set(shards[1]) == set(range(len(ds)))


@pytest.mark.parametrize('cls', ALL)
def test_round_up_false(cls):
    ds = lt_dataset()
    lens = [len(make(cls, ds, seed=0, rank=r, world_size=2, round_up=False,
                     num_samples=1001)) for r in range(2)]
    assert lens == [501, 500]
    got = [list(make(cls, ds, seed=0, rank=r, world_size=2, round_up=False,
                     num_samples=1001)) for r in range(2)]
    assert [len(g) for g in got] == lens


def test_shards_follow_get_dist_info(monkeypatch):
    ds = lt_dataset()
    monkeypatch.setattr(samplers_mod, 'get_dist_info', lambda: (1, 2))
    s = ClassBalancedSampler(ds, seed=4)
    assert (s.rank, s.world_size) == (1, 2)
    assert list(s) == s.global_indices()[1::2].tolist()


@pytest.mark.parametrize('cls', ALL)
def test_pure_function_of_seed_and_epoch(cls):
    ds = lt_dataset()
    a, b = make(cls, ds, seed=21), make(cls, ds, seed=21)
    for epoch in range(3):  # b walks through epochs, a jumps (resume)
        b.set_epoch(epoch)
        list(b)
    a.set_epoch(2)
    assert list(a) == list(b) == list(b)  # re-iterating gives the same draw
    b.set_epoch(3)
    assert list(a) != list(b)
    c = make(cls, ds, seed=22)
    c.set_epoch(2)
    assert list(a) != list(c)


def test_progressive_interpolation():
    ds = lt_dataset()
    s = ProgressivelyBalancedSampler(ds, seed=0, max_epochs=8)
    p_ib, p_cb = expected_probs(1.0), np.full(10, 0.1)
    np.testing.assert_allclose(s.class_probs(0).numpy(), p_ib)
    np.testing.assert_allclose(s.class_probs(8).numpy(), p_cb)
    np.testing.assert_allclose(s.class_probs(2).numpy(), 0.75 * p_ib + 0.25 * p_cb)
    np.testing.assert_allclose(s.class_probs(20).numpy(), p_cb)  # clamped after T
    n = 100_000
    for epoch, probs in ((0, p_ib), (4, 0.5 * p_ib + 0.5 * p_cb), (8, p_cb)):
        big = ProgressivelyBalancedSampler(ds, seed=1, max_epochs=8, num_samples=n)
        big.set_epoch(epoch)
        assert_frequencies(ds.labels[np.array(list(big))], probs, n)


def test_progressive_max_epochs_from_message_hub():
    ds = lt_dataset()
    hub = MessageHub.get_instance('test_progressive_max_epochs_from_message_hub')
    s = ProgressivelyBalancedSampler(ds, seed=0)
    hub.update_info('max_epochs', 4)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(MessageHub, 'get_current_instance', classmethod(lambda c: hub))
            np.testing.assert_allclose(s.class_probs(2).numpy(),
                                       0.5 * expected_probs(1.0) + 0.05)
            hub.update_info('max_epochs', None)
            with pytest.raises(RuntimeError, match='sampler.max_epochs'):
                list(s)
    finally:
        hub.pop_info('max_epochs', None)


def test_errors():
    ds = lt_dataset()
    with pytest.raises(ValueError, match='shuffle=False'):
        ClassBalancedSampler(ds, shuffle=False, seed=0)
    with pytest.raises(ValueError, match='max_epochs'):
        ProgressivelyBalancedSampler(ds, seed=0, max_epochs=0)
    with pytest.raises(ValueError, match='num_samples'):
        ClassBalancedSampler(ds, seed=0, num_samples=0)
    with pytest.raises(ValueError, match='outside'):
        ClassBalancedSampler(FakeDataset([0, 1, -1]), seed=0)
    with pytest.raises(TypeError, match='get_gt_labels'):
        ClassBalancedSampler([1, 2, 3], seed=0)


def test_build_from_registry_config():
    from mmengine.runner import Runner
    from mmpretrain.registry import DATA_SAMPLERS
    ds = lt_dataset()
    s = DATA_SAMPLERS.build(dict(type='ProgressivelyBalancedSampler', shuffle=True,
                                 max_epochs=5), default_args=dict(dataset=ds, seed=0))
    assert isinstance(s, ProgressivelyBalancedSampler)
    loader = Runner.build_dataloader(
        dict(batch_size=64, num_workers=0, dataset=ds,
             sampler=dict(type='mmpretrain.ClassBalancedSampler', shuffle=True)), seed=0)
    assert isinstance(loader.sampler, ClassBalancedSampler) and loader.sampler.seed == 0
    assert len(loader) == -(-len(ds) // 64)


def _dist_draw(rank, world_size):
    ds = lt_dataset()
    out = {}
    for cls in (InstanceBalancedSampler, ClassBalancedSampler):
        s = cls(ds)  # seed=None: sync_random_seed() must agree across ranks
        s.set_epoch(1)
        out[cls.__name__] = (s.seed, s.rank, s.world_size, list(s))
    return out


@pytest.mark.slow
def test_two_process_gloo_shards():
    from tests.dist_utils import run_distributed
    results = run_distributed(_dist_draw)
    ds = lt_dataset()
    for name in ('InstanceBalancedSampler', 'ClassBalancedSampler'):
        (seed0, r0, w0, idx0), (seed1, r1, w1, idx1) = (res[name] for res in results)
        assert seed0 == seed1 and (r0, r1, w0, w1) == (0, 1, 2, 2)
        ref = (InstanceBalancedSampler if name.startswith('Instance') else
               ClassBalancedSampler)(ds, seed=seed0, rank=0, world_size=2)
        ref.set_epoch(1)
        draw = ref.global_indices().tolist()
        assert idx0 == draw[0::2] and idx1 == draw[1::2]


def test_skip_next_starts_one_pass_later():
    """``skip_next(n)`` (mid-epoch resume) drops the first n indices of the next pass only."""
    from lt_plugins.datasets.samplers import ClassBalancedSampler, InstanceBalancedSampler

    class _Labels:
        metainfo = dict(classes=('a', 'b', 'c'))

        def __len__(self):
            return 10

        def get_gt_labels(self):
            return np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])

    for cls in (InstanceBalancedSampler, ClassBalancedSampler):
        sampler = cls(_Labels(), seed=3, rank=1, world_size=2)
        sampler.set_epoch(2)
        whole = list(sampler)
        sampler.skip_next(3)
        assert list(sampler) == whole[3:]
        assert list(sampler) == whole  # one pass only
        assert len(sampler) == 5
        with pytest.raises(ValueError, match='num must be >= 0'):
            sampler.skip_next(-1)
