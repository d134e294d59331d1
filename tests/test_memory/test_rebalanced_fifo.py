"""RebalancedFIFOMemory: Eq. 1 admission, FIFO order, layouts, DDP identity, resume."""
import pytest
import torch

from lt_plugins.memory.rebalanced_fifo import (RebalancedFIFOMemory, counter_generator,
                                               rebalanced_admission_prob)
from mmpretrain.registry import MODELS
from tests.dist_utils import run_distributed


def _reference_enqueue(state, feats, labels, prob, seed, size, per_class_slots=None):
    """Sequential, one-pair-at-a-time FIFO (the brute-force reference)."""
    gen = counter_generator(seed, state['step'])
    draw = torch.rand(labels.shape[0], generator=gen)
    state['step'] += 1
    for f, y, u in zip(feats, labels, draw):
        if not bool(u < prob[y]):
            continue
        if per_class_slots is None:
            p = state['ptr']
            state['ptr'] = (p + 1) % size
        else:
            c = int(y)
            p = c * per_class_slots + state['class_ptr'][c]
            state['class_ptr'][c] = (state['class_ptr'][c] + 1) % per_class_slots
        state['feats'][p] = f
        state['labels'][p] = y
        state['valid'][p] = True


def _new_state(size, dim, num_classes):
    return dict(feats=torch.zeros(size, dim), labels=torch.full((size, ), -1),
                valid=torch.zeros(size, dtype=torch.bool), ptr=0,
                class_ptr=[0] * num_classes, step=0)


def test_admission_prob_hand_values():
    counts = torch.tensor([100, 10, 1])
    p = rebalanced_admission_prob(counts, 1.5)
    torch.testing.assert_close(p, torch.tensor([1e-3, 10**-1.5, 1.0]))
    raw = rebalanced_admission_prob(counts, 1.5, 'raw')
    w = torch.tensor([1e-3, 10**-1.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(raw, (w / w.sum()).float())
    torch.testing.assert_close(rebalanced_admission_prob(counts, 0.0), torch.ones(3))
    # a class absent from training is never admitted and breaks nothing
    torch.testing.assert_close(rebalanced_admission_prob(torch.tensor([4, 0, 1]), 1.0),
                               torch.tensor([0.25, 0.0, 1.0]))


def test_admission_statistics():
    counts = [1000, 300, 50, 8]
    bank = RebalancedFIFOMemory(size=200_000, dim=1, num_classes=4, beta=1.5,
                                class_counts=counts, seed=3)
    prob = bank.admission_prob()
    gen = torch.Generator().manual_seed(0)
    offered = torch.zeros(4)
    for _ in range(40):
        labels = torch.randint(0, 4, (4000, ), generator=gen)
        offered += torch.bincount(labels, minlength=4)
        bank.enqueue(torch.zeros(4000, 1), labels)
    admitted = bank.class_occupancy().float()
    expected = offered * prob
    sd = (offered * prob * (1 - prob)).sqrt()
    assert torch.all((admitted - expected).abs() <= 5 * sd + 1), (admitted, expected)
    assert admitted[3] == offered[3]  # the rarest class is always stored


@pytest.mark.parametrize('per_class_slots', [None, 3])
def test_fifo_order_matches_sequential_reference(per_class_slots):
    torch.manual_seed(0)
    C, dim = 4, 5
    size = 7 if per_class_slots is None else C * per_class_slots
    counts = [500, 120, 30, 6]
    bank = RebalancedFIFOMemory(size=size, dim=dim, num_classes=C, beta=0.7,
                                class_counts=counts, per_class_slots=per_class_slots, seed=11)
    prob = bank.admission_prob()
    ref = _new_state(size, dim, C)
    for batch in (3, 20, 1, 9, 40, 2):  # 20 and 40 overflow the bank within one call
        feats = torch.randn(batch, dim)
        labels = torch.randint(0, C, (batch, ))
        bank.enqueue(feats, labels)
        _reference_enqueue(ref, feats, labels, prob, 11, size, per_class_slots)
        torch.testing.assert_close(bank.feats, ref['feats'], rtol=0, atol=0)
        assert torch.equal(bank.labels, ref['labels'])
        assert torch.equal(bank.valid, ref['valid'])
        assert int(bank.ptr) == ref['ptr']
        if per_class_slots is not None:
            assert bank.class_ptr.tolist() == ref['class_ptr']
            owner = torch.arange(size) // per_class_slots
            assert torch.all(bank.labels[bank.valid] == owner[bank.valid])
    assert int(bank.step) == 6


def test_beta_zero_is_plain_fifo_without_counts():
    bank = MODELS.build(dict(type='RebalancedFIFOMemory', size=5, dim=2, num_classes=3,
                             beta=0.0))
    feats = torch.arange(16, dtype=torch.float32).reshape(8, 2)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    bank.enqueue(feats[:3], labels[:3])
    assert bank.fill_ratio() == pytest.approx(0.6)
    f, y = bank.get()
    torch.testing.assert_close(f, feats[:3])
    bank.enqueue(feats[3:], labels[3:])
    # 8 entries through 5 slots: slots hold entries 5,6,7,3,4 (pointer wrapped at 5)
    torch.testing.assert_close(bank.feats, feats[[5, 6, 7, 3, 4]])
    assert bank.labels.tolist() == labels[[5, 6, 7, 3, 4]].tolist()
    assert int(bank.ptr) == 3 and bank.fill_ratio() == 1.0


def test_float32_storage_and_detach():
    bank = RebalancedFIFOMemory(size=4, dim=3, num_classes=2, beta=0.0)
    x = torch.randn(2, 3, dtype=torch.float16, requires_grad=True)
    bank.enqueue(x, torch.tensor([0, 1]))
    f, _ = bank.get()
    assert f.dtype == torch.float32 and not f.requires_grad


def test_clear_errors():
    with pytest.raises(ValueError, match='memory size must be >= 1'):
        RebalancedFIFOMemory(size=0, dim=3, num_classes=2)
    with pytest.raises(ValueError, match='per_class_slots'):
        RebalancedFIFOMemory(size=5, dim=3, num_classes=2, per_class_slots=2)
    bank = RebalancedFIFOMemory(size=4, dim=3, num_classes=2, beta=1.5)
    with pytest.raises(RuntimeError, match='missing class counts.*ClassCountsHook'):
        bank.enqueue(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='num_classes=2 but the class counts have 3'):
        bank.set_class_counts(torch.tensor([5, 3, 1]))
    explicit = RebalancedFIFOMemory(size=4, dim=3, num_classes=2, class_counts=[9, 1])
    explicit.set_class_counts(torch.tensor([1, 1]))  # explicit counts win
    assert explicit.class_counts.tolist() == [9, 1]


def test_state_dict_resume_continues_random_sequence():
    torch.manual_seed(1)
    batches = [(torch.randn(6, 4), torch.randint(0, 3, (6, ))) for _ in range(8)]
    kw = dict(size=9, dim=4, num_classes=3, beta=1.5, class_counts=[50, 10, 2], seed=5)
    full = RebalancedFIFOMemory(**kw)
    for f, y in batches:
        full.enqueue(f, y)
    first = RebalancedFIFOMemory(**kw)
    for f, y in batches[:3]:
        first.enqueue(f, y)
    resumed = RebalancedFIFOMemory(**kw)
    resumed.load_state_dict(first.state_dict())
    for f, y in batches[3:]:
        resumed.enqueue(f, y)
    for name, buf in full.state_dict().items():
        assert torch.equal(buf, resumed.state_dict()[name]), name


# ---- two processes (gloo) -----------------------------------------------------------------
_KW = dict(size=11, dim=3, num_classes=4, beta=1.0, class_counts=[40, 20, 5, 2], seed=7)


def _rank_batches(rank):
    gen = torch.Generator().manual_seed(100 + rank)
    out = []
    for step in range(6):
        n = 5 + rank + (step % 2)  # ranks offer different batch sizes
        out.append((torch.randn(n, 3, generator=gen), torch.randint(0, 4, (n, ), generator=gen)))
    return out


def _dist_worker(rank, world_size):
    bank = RebalancedFIFOMemory(**_KW)
    for f, y in _rank_batches(rank):
        bank.enqueue(f, y)
    return {k: v.clone() for k, v in bank.state_dict().items()}


def test_ddp_banks_identical_and_equal_to_global_batch():
    states = run_distributed(_dist_worker, world_size=2)
    single = RebalancedFIFOMemory(**_KW)
    for (f0, y0), (f1, y1) in zip(_rank_batches(0), _rank_batches(1)):
        single.enqueue(torch.cat([f0, f1]), torch.cat([y0, y1]))
    for name, buf in single.state_dict().items():
        assert torch.equal(states[0][name], states[1][name]), name
        assert torch.equal(states[0][name], buf), name
    assert single.valid.any() and single.labels[single.valid].unique().numel() > 1
