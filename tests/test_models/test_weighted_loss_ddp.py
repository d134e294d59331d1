"""Weighted means over the global batch under DDP: LDAM-DRW on 2 gloo ranks trains as one
process on the concatenated batch (``normalize_over='global'``, the default); the per-rank
form (``'rank'``, the reference code's) does not. STG stage 2's valid-sample mean likewise."""
import threading

import pytest
import torch

from tests.dist_utils import run_distributed, run_ranks_in_threads

COUNTS = [50, 20, 5, 2]
# the global batch of each step: ranks get halves with different class mixes, so per-rank
# weighted means differ from the global one
LABELS = torch.tensor([[0, 0, 0, 1, 0, 0, 3, 2, 1, 3, 2, 0],
                       [1, 0, 0, 0, 0, 0, 2, 3, 3, 1, 0, 2],
                       [0, 0, 1, 0, 0, 0, 3, 3, 2, 2, 1, 1]])


def _ldam_drw_steps(rank, world_size, normalize_over):
    """Three SGD (momentum) steps of a float64 linear classifier with LDAM-DRW on; DDP-wrapped
    when ``world_size > 1`` (each rank its half of the global batch)."""
    import lt_plugins  # noqa: F401
    from lt_plugins.models.losses import LDAMLoss
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 4).double()
    criterion = LDAMLoss(max_margin=0.5, scale=1.0, drw_beta=0.9, drw_enabled=True,
                         class_counts=COUNTS, normalize_over=normalize_over)
    net = model
    if world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    optim = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    losses = []
    per_rank = 12 // world_size
    for labels in LABELS:
        x = torch.randn(12, 5, generator=gen, dtype=torch.float64)
        part = slice(rank * per_rank, (rank + 1) * per_rank)
        loss = criterion(net(x[part]), labels[part])
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.detach())
    return dict(weight=model.weight.detach().clone(), bias=model.bias.detach().clone(),
                momentum=[optim.state[p]['momentum_buffer'].clone()
                          for p in model.parameters()],
                losses=torch.stack(losses))


@pytest.mark.slow  # two spawned gloo processes, twice: ~25 s on a shared core
def test_ldam_drw_two_ranks_equal_one_process_on_the_concatenated_batch():
    single = _ldam_drw_steps(0, 1, 'global')
    assert torch.equal(single['weight'], _ldam_drw_steps(0, 1, 'rank')['weight'])  # 1 process
    ranks = run_distributed(_ldam_drw_steps, 'global')
    for r in ranks:
        torch.testing.assert_close(r['weight'], single['weight'], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(r['bias'], single['bias'], rtol=1e-12, atol=1e-12)
        for m, m_ref in zip(r['momentum'], single['momentum']):
            torch.testing.assert_close(m, m_ref, rtol=1e-12, atol=1e-12)
    # each rank logs its share: their mean is the global loss
    torch.testing.assert_close((ranks[0]['losses'] + ranks[1]['losses']) / 2, single['losses'],
                               rtol=1e-12, atol=1e-12)
    # the reference code's per-rank mean is not the one-process update (the test can fail)
    per_rank = run_distributed(_ldam_drw_steps, 'rank')
    assert (per_rank[0]['weight'] - single['weight']).abs().max() > 1e-4


def _ldam_value(rank, world_size):
    from lt_plugins.models.losses import LDAMLoss
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(12, 4, generator=gen, dtype=torch.float64)
    criterion = LDAMLoss(scale=1.0, drw_beta=0.9, drw_enabled=True, class_counts=COUNTS)
    part = slice(rank * 12 // world_size, (rank + 1) * 12 // world_size)
    return criterion(logits[part], LABELS[0][part])


def test_ldam_drw_global_mean_threaded_ranks_hand_reference():
    """The per-rank shares average to ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` of the whole
    batch, computed here by hand from the per-sample losses."""
    import torch.nn.functional as F
    from lt_plugins.models.losses import LDAMLoss
    shares = run_ranks_in_threads(_ldam_value)
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(12, 4, generator=gen, dtype=torch.float64)
    criterion = LDAMLoss(scale=1.0, drw_beta=0.9, class_counts=COUNTS)
    w = criterion.drw_weights.double()[LABELS[0]]
    l = F.cross_entropy(criterion.margin_logits(logits, LABELS[0]), LABELS[0],
                        reduction='none')
    expected = (w * l).sum() / w.sum()
    torch.testing.assert_close((shares[0] + shares[1]) / 2, expected, rtol=1e-12, atol=0)
    # rank 0's half is mostly class 0 (small weight): its own weighted mean differs
    rank_only = (w[:6] * l[:6]).sum() / w[:6].sum()
    assert not torch.allclose(shares[0], rank_only)


def test_normalize_over_is_checked():
    from lt_plugins.models.heads.stg_generator_head import STGGeneratorHead
    from lt_plugins.models.losses import LDAMLoss
    with pytest.raises(ValueError, match="LDAMLoss: normalize_over must be 'global'"):
        LDAMLoss(normalize_over='batch')
    with pytest.raises(ValueError, match="STGGeneratorHead: normalize_over"):
        STGGeneratorHead(6, 4, class_counts=[500, 300, 200, 120, 50, 20],
                         normalize_over='local')


_GLOBAL_RNG = threading.Lock()


def _stg_losses(rank, world_size):
    """STG stage-2 loss (generator in eval mode, so BatchNorm does not depend on the split)."""
    import lt_plugins  # noqa: F401
    from mmpretrain.structures import DataSample
    from lt_plugins.models.heads.stg_generator_head import STGGeneratorHead
    with _GLOBAL_RNG:   # threaded ranks share torch's global generator: seed and build alone
        torch.manual_seed(0)
        head = STGGeneratorHead(6, 4, class_counts=[500, 300, 200, 120, 50, 20],
                                dictionary_size=0, smooth_momentum=0.0, min_set_size=2).eval()
    gen = torch.Generator().manual_seed(3)
    feats = torch.randn(16, 4, generator=gen) * 3
    # rank 0's half has many valid head samples, rank 1's few
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 0, 3, 4, 5, 4, 5, 1, 3])
    part = slice(rank * 16 // world_size, (rank + 1) * 16 // world_size)
    samples = [DataSample().set_gt_label(int(y)) for y in labels[part]]
    return head.loss((feats[part], ), samples)


def test_stg_generator_loss_mean_over_the_global_batch_threaded_ranks():
    single = _stg_losses(0, 1)
    ranks = run_ranks_in_threads(
        _stg_losses, rank_functions=('lt_plugins.models.heads.stg_generator_head.get_rank', ))
    for key in ('loss_mu', 'loss_sigma'):
        torch.testing.assert_close((ranks[0][key] + ranks[1][key]) / 2, single[key])
    assert not torch.allclose(ranks[0]['loss_mu'], single['loss_mu'])


def _cb_value(rank, world_size, normalize_over='global'):
    from lt_plugins.models.losses import ClassBalancedLoss
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(12, 4, generator=gen, dtype=torch.float64)
    criterion = ClassBalancedLoss(beta=0.9, class_counts=COUNTS, normalize_over=normalize_over)
    part = slice(rank * 12 // world_size, (rank + 1) * 12 // world_size)
    return criterion(logits[part], LABELS[1][part])


def test_class_balanced_loss_global_mean_threaded_ranks_hand_reference():
    """Weight balancing's class-balanced loss: the ranks' shares average to the weighted mean
    of the whole batch; the per-rank form does not."""
    import torch.nn.functional as F
    from lt_plugins.models.losses.ldam_loss import drw_class_weights
    shares = run_ranks_in_threads(_cb_value)
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(12, 4, generator=gen, dtype=torch.float64)
    w = drw_class_weights(torch.tensor(COUNTS), 0.9).double()[LABELS[1]]
    l = F.cross_entropy(logits.float(), LABELS[1], reduction='none').double()
    expected = (w * l).sum() / w.sum()
    torch.testing.assert_close((shares[0] + shares[1]) / 2, expected.float(), rtol=1e-6,
                               atol=0)
    per_rank = run_ranks_in_threads(_cb_value, 'rank')
    assert not torch.allclose((per_rank[0] + per_rank[1]) / 2, expected.float(), rtol=1e-4)
    with pytest.raises(ValueError, match="ClassBalancedLoss: normalize_over"):
        _cb_value(0, 1, 'batch')
