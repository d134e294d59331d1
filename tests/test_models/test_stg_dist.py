"""STG stage-2 state under 2-process gloo DDP: the dictionary, the per-sample smoothing and
the head-class prototypes are identical on every rank (all-gathered writes)."""
import pytest
import torch

from tests.dist_utils import run_distributed, run_ranks_in_threads

COUNTS = [500, 300, 200, 120, 50, 20]


def _stage2_steps(rank, world_size):
    import lt_plugins  # noqa: F401
    from mmpretrain.structures import DataSample
    from lt_plugins.models.heads.stg_generator_head import STGGeneratorHead
    torch.manual_seed(0)  # same weights on every rank
    head = STGGeneratorHead(6, 4, class_counts=COUNTS, dictionary_size=8, smooth_momentum=0.5)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        feats = torch.randn(2 * 8, 4, generator=g)
        labels = torch.randint(0, 6, (16, ), generator=g)
        idx = torch.randperm(40, generator=g)[:16]
        sl = slice(rank * 8, (rank + 1) * 8)  # this rank's half of the global batch
        samples = [DataSample(metainfo=dict(sample_idx=int(i))).set_gt_label(int(y))
                   for y, i in zip(labels[sl], idx[sl])]
        head.loss((feats[sl], ), samples)
    return {k: v.clone() for k, v in head.state_dict().items()
            if k.startswith(('dictionary.', 'smoother.', 'generator.proto', 'generator.trained'))}


@pytest.mark.slow  # two spawned processes: ~20 s CPU, more on a shared core
def test_stage2_state_identical_across_ranks():
    r0, r1 = run_distributed(_stage2_steps)
    assert r0.keys() == r1.keys() and r0['smoother.seen'].sum() > 8  # both ranks' samples
    for key in r0:
        torch.testing.assert_close(r0[key], r1[key], rtol=0, atol=0, msg=key)
    # prototypes = class sums over the global batches
    g = torch.Generator().manual_seed(1)
    proto = torch.zeros(6, 4, dtype=torch.float64)
    for _ in range(3):
        feats = torch.randn(16, 4, generator=g)
        labels = torch.randint(0, 6, (16, ), generator=g)
        torch.randperm(40, generator=g)
        keep = labels < 4
        proto.index_add_(0, labels[keep], feats[keep].double())
    torch.testing.assert_close(r0['generator.proto_sum'], proto)


def _stage2_state(rank, world_size, steps=3, batch=8):
    """Run STG stage-2 steps on this rank's slice of seeded global batches of 16 (a single
    process, ``world_size=1``, gets the whole batch); return the Eq. 1 state."""
    import lt_plugins  # noqa: F401
    from mmpretrain.structures import DataSample
    from lt_plugins.models.heads.stg_generator_head import STGGeneratorHead
    torch.manual_seed(0)
    head = STGGeneratorHead(6, 4, class_counts=COUNTS, dictionary_size=12, smooth_momentum=0.5,
                            min_set_size=2)
    g = torch.Generator().manual_seed(1)
    per_rank = 16 // world_size
    for _ in range(steps):
        feats = torch.randn(16, 4, generator=g) * 3
        labels = torch.randint(0, 6, (16, ), generator=g)
        idx = torch.randperm(40, generator=g)[:16]
        sl = slice(rank * per_rank, (rank + 1) * per_rank)
        samples = [DataSample(metainfo=dict(sample_idx=int(i))).set_gt_label(int(y))
                   for y, i in zip(labels[sl], idx[sl])]
        head.loss((feats[sl], ), samples)
    return {k: v.clone() for k, v in head.state_dict().items()
            if k.startswith(('dictionary.', 'smoother.', 'generator.proto'))}


def _assert_split_independent(r0, r1):
    single = _stage2_state(0, 1)
    assert single['smoother.seen'].sum() > 10
    for key in single:
        torch.testing.assert_close(r0[key], single[key], rtol=0, atol=0, msg=key)
        torch.testing.assert_close(r1[key], single[key], rtol=0, atol=0, msg=key)


@pytest.mark.slow  # two spawned processes: ~20 s CPU; the threaded form below runs by default
def test_stage2_statistics_independent_of_the_ddp_split():
    """Eq. 1 on the gathered batch: 2 gloo ranks x 8 equal 1 process x 16, to the bit."""
    _assert_split_independent(*run_distributed(_stage2_state))


def test_stage2_statistics_independent_of_the_split_threaded_ranks():
    """The same check with the two ranks as threads exchanging through mmengine.dist."""
    _assert_split_independent(*run_ranks_in_threads(
        _stage2_state, rank_functions=('lt_plugins.models.heads.stg_generator_head.get_rank', )))
