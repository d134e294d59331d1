"""MBJ losses (Eq. 3, Eq. 4) and heads (Eq. 2, variants) against brute-force references."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401  (registration)
from lt_plugins.engine.hooks.mbj_memory_stats_hook import (memory_statistics,
                                                          within_class_angular_spread)
from lt_plugins.models.heads.mbj_cls_head import multi_prototype_logits
from lt_plugins.models.losses.circle_memory_loss import circle_memory_loss


def _samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


# ---- losses ---------------------------------------------------------------------------------
def _circle_brute(x, y, mem, mem_y, a, m):
    x = F.normalize(x, dim=1)
    mem = F.normalize(mem, dim=1)
    total = []
    for i in range(x.shape[0]):
        s = x.new_zeros(())
        for j in range(mem.shape[0]):          # negatives v_j
            if mem_y[j] == y[i]:
                continue
            for k in range(mem.shape[0]):      # positives u_k
                if mem_y[k] != y[i]:
                    continue
                s = s + torch.exp(a * (mem[j] @ x[i] - mem[k] @ x[i] + m))
        total.append(torch.log1p(s))
    return torch.stack(total).mean()


def test_circle_memory_loss_and_grad_equal_brute_force_double_sum():
    torch.manual_seed(0)
    x = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    mem = torch.randn(11, 8, dtype=torch.float64, requires_grad=True)
    mem_y = torch.tensor([0, 0, 1, 2, 2, 2, 1, 0, 4, 4, 1])  # class 3: no positive
    loss_fn = MODELS.build(dict(type='CircleMemoryLoss', scale=4.0, margin=0.25))
    # the factorised form is computed in float32; compare against the float64 double sum
    loss = loss_fn(x, y, mem, mem_y)
    ref = _circle_brute(x, y, mem, mem_y, 4.0, 0.25)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    gx, gm = torch.autograd.grad(loss, (x, mem))
    rx, rm = torch.autograd.grad(ref, (x, mem))
    torch.testing.assert_close(gx, rx, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gm, rm, rtol=1e-4, atol=1e-6)


def test_circle_no_positive_gives_zero_and_no_nan():
    sim = torch.randn(3, 4, requires_grad=True)
    pos = torch.tensor([[False] * 4, [True, False, False, False], [True] * 4])
    loss = circle_memory_loss(sim, pos, 64.0, 0.35)
    assert loss[0] == 0 and loss[2] == 0 and loss[1] > 0  # no positive / no negative
    loss.sum().backward()
    assert torch.isfinite(sim.grad).all() and torch.all(sim.grad[0] == 0)
    # large scale stays finite (factorised LSE form)
    big = circle_memory_loss(torch.tensor([[1.0, -1.0]]), torch.tensor([[False, True]]), 1e3, 0.5)
    assert torch.isfinite(big).all() and big.item() == pytest.approx(1e3 * 2.5, rel=1e-6)


def test_cosface_against_hand_written_reference():
    torch.manual_seed(1)
    cos = torch.rand(5, 7) * 2 - 1
    y = torch.tensor([0, 6, 3, 3, 1])
    a, m = 30.0, 0.2
    loss = MODELS.build(dict(type='CosFaceLoss', scale=a, margin=m))(cos, y)
    ref = []
    for i in range(5):
        num = math.exp(a * (cos[i, y[i]].item() - m))
        den = num + sum(math.exp(a * cos[i, k].item()) for k in range(7) if k != y[i])
        ref.append(-math.log(num / den))
    assert loss.item() == pytest.approx(sum(ref) / 5, rel=1e-5)


def test_multi_prototype_logits_brute_force():
    torch.manual_seed(2)
    sim = torch.randn(4, 6)
    labels = torch.tensor([2, 0, 2, 2, 0, 3])
    logits, present = multi_prototype_logits(sim, labels, 5)
    assert present.tolist() == [True, False, True, True, False]
    for c in (0, 2, 3):
        torch.testing.assert_close(logits[:, c], torch.logsumexp(sim[:, labels == c], dim=1))
    assert torch.all(logits[:, [1, 4]] < -1e8)


# ---- MBJClsHead -----------------------------------------------------------------------------
def _head(**kw):
    cfg = dict(type='MBJClsHead', num_classes=4, in_channels=6, eta=15.0,
               memory=dict(type='RebalancedFIFOMemory', beta=1.5, class_counts=[100, 40, 10, 3]))
    cfg.update(kw)
    return MODELS.build(cfg)


@pytest.mark.parametrize('classifier', ['linear', 'cosine'])
def test_cls_head_loss_is_batch_plus_eta_memory(classifier):
    torch.manual_seed(3)
    head = _head(classifier=classifier)
    assert head.memory.size == 20  # 5 * C
    for _ in range(3):
        x = torch.randn(16, 6, requires_grad=True)
        y = torch.randint(0, 4, (16, ))
        losses = head.loss((x, ), _samples(y))
        mem_x, mem_y = head.memory.get()  # enqueue happened before the loss (Algorithm 1)
        ref_batch = F.cross_entropy(head.classify(x), y)
        ref_mem = F.cross_entropy(head.classify(mem_x), mem_y)
        torch.testing.assert_close(losses['loss'], ref_batch)
        torch.testing.assert_close(losses['loss_memory'], 15.0 * ref_mem)
        # the memory term reaches the classifier only, never the features
        g = torch.autograd.grad(losses['loss_memory'], x, allow_unused=True)[0]
        assert g is None or torch.all(g == 0)
    assert int(head.memory.step) == 3 and head.memory.fill_ratio() > 0


@pytest.mark.parametrize('reduction', ['capacity', 'batch'])
def test_cls_head_memory_reduction(reduction):
    torch.manual_seed(7)
    head = _head(memory_reduction=reduction)
    x = torch.randn(16, 6)
    y = torch.tensor([3, 2] * 8)
    losses = head.loss((x, ), _samples(y))
    mem_x, mem_y = head.memory.get()
    assert 0 < mem_y.numel() < head.memory.size  # partly filled
    total = F.cross_entropy(head.classify(mem_x), mem_y, reduction='sum')
    denom = head.memory.size if reduction == 'capacity' else 16
    torch.testing.assert_close(losses['loss_memory'], 15.0 * total / denom)


def test_cls_head_empty_memory_and_switch_off():
    head = _head(memory=dict(type='RebalancedFIFOMemory', beta=1.5,
                             class_counts=[10**6, 10**6, 10**6, 1]))
    x = torch.randn(8, 6, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])  # rarest class absent, others p = 1e-9
    losses = head.loss((x, ), _samples(y))
    assert head.memory.fill_ratio() == 0 and losses['loss_memory'].item() == 0
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)
    head.set_memory_enabled(False)
    losses = head.loss((x, ), _samples(y))
    assert set(losses) == {'loss'} and int(head.memory.step) == 1  # no write while off


@pytest.mark.parametrize('variant', ['W', 'WF', 'FR', 'FR+RJ'])
def test_cls_head_ablation_variants(variant):
    torch.manual_seed(4)
    head = _head(variant=variant)
    for step in range(3):
        x = torch.randn(12, 6, requires_grad=True)
        y = torch.randint(0, 4, (12, ))
        losses = head.loss((x, ), _samples(y))
        total = sum(losses.values())
        assert torch.isfinite(total)
        total.backward()
        if variant in ('FR', 'FR+RJ'):  # no history: memory holds only this batch's features
            mem_x, mem_y = head.memory.get()
            assert set(mem_y.tolist()) <= set(y.tolist())
            if variant == 'FR':
                ref = F.cross_entropy(head.classify(mem_x), mem_y) if len(mem_y) else 0.0
                torch.testing.assert_close(losses['loss_memory'], 15.0 * torch.as_tensor(ref))
    if variant in ('W', 'WF'):
        protos, proto_y = head.weight_memory.get()
        assert protos.shape[1] == 6 and 3 in proto_y.tolist()  # rarest class always stored
    if variant == 'W':
        assert head.memory is None


def test_weight_memory_loss_reference():
    torch.manual_seed(5)
    head = _head(variant='W', classifier='cosine', cosine_scale=10.0)
    x = torch.randn(5, 6)
    y = torch.tensor([0, 1, 2, 3, 3])
    losses = head.loss((x, ), _samples(y))
    protos, proto_y = head.weight_memory.get()
    sim = 10.0 * F.normalize(x, dim=1) @ F.normalize(protos, dim=1).t()
    ref = []
    for i in range(5):
        if not bool((proto_y == y[i]).any()):
            ref.append(torch.tensor(0.0))
            continue
        classes = proto_y.unique()
        cls_logit = torch.stack([torch.logsumexp(sim[i, proto_y == c], 0) for c in classes])
        ref.append(-F.log_softmax(cls_logit, 0)[(classes == y[i]).nonzero()[0, 0]])
    torch.testing.assert_close(losses['loss_memory'], 15.0 * torch.stack(ref).mean())


def test_cls_head_clear_errors():
    head = _head()
    with pytest.raises(ValueError, match='model.head.num_classes=10'):
        head.set_class_counts(torch.ones(10, dtype=torch.long))
    with pytest.raises(ValueError, match='memory size must be >= 1'):
        _head(memory=dict(type='RebalancedFIFOMemory', size=0))
    no_counts = _head(memory=dict(type='RebalancedFIFOMemory', beta=1.5))
    with pytest.raises(RuntimeError, match='missing class counts'):
        no_counts.loss((torch.randn(2, 6), ), _samples([0, 1]))
    with pytest.raises(ValueError, match='variant'):
        _head(variant='X')


# ---- MBJMetricHead --------------------------------------------------------------------------
def test_metric_head_loss_and_predict():
    torch.manual_seed(6)
    head = MODELS.build(dict(type='MBJMetricHead', num_classes=5, in_channels=8,
                             memory=dict(type='RebalancedFIFOMemory', beta=1.5,
                                         class_counts=[30, 20, 5, 5, 5])))
    x = torch.randn(10, 8, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    losses = head.loss((x, ), _samples(y))
    protos, proto_y = head.memory.get()
    assert {2, 3, 4} <= set(proto_y.tolist())  # the rarest classes are always admitted
    cos = F.normalize(x, dim=1) @ F.normalize(head.weight, dim=1).t()
    ref_batch = F.cross_entropy(64.0 * (cos - 0.35 * F.one_hot(y, 5)), y)
    ref_mem = _circle_brute(x.double(), y, protos.double(), proto_y, 64.0, 0.35).float()
    torch.testing.assert_close(losses['loss'], ref_batch)
    torch.testing.assert_close(losses['loss_memory'], ref_mem / 15.0, rtol=1e-4, atol=1e-6)
    sum(losses.values()).backward()
    assert torch.isfinite(x.grad).all()
    preds = head.predict((x.detach(), ))
    torch.testing.assert_close(torch.stack([p.pred_feat for p in preds]),
                               F.normalize(x.detach(), dim=1))
    base = MODELS.build(dict(type='MBJMetricHead', num_classes=5, in_channels=8,
                             memory_enabled=False))
    assert set(base.loss((x, ), _samples(y))) == {'loss'}  # CosFace-only baseline


# ---- memory statistics ----------------------------------------------------------------------
def test_angular_spread_hand_computed():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 2])
    spread = within_class_angular_spread(feats, labels, 3)
    assert spread[0].item() == pytest.approx(45.0)  # both 45 degrees from the mean direction
    assert math.isnan(spread[1].item()) and math.isnan(spread[2].item())
    bank = MODELS.build(dict(type='RebalancedFIFOMemory', size=8, dim=2, num_classes=3,
                             beta=0.0, class_counts=[500, 50, 5]))
    bank.enqueue(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]),
                 torch.tensor([0, 0, 2, 2]))
    stats = memory_statistics(bank, many_shot_thr=100)
    assert stats['fill'] == 0.5 and stats['many_share'] == 0.5 and stats['tail_share'] == 0.5
    assert stats['spread_many_deg'] == pytest.approx(45.0)
    assert stats['spread_tail_deg'] == pytest.approx(45.0)


def test_memory_staleness_and_class_shares():
    # beta 0: every pair admitted; global ring of 4 slots
    bank = MODELS.build(dict(type='RebalancedFIFOMemory', size=4, dim=2, num_classes=3,
                             beta=0.0, class_counts=[500, 50, 5]))
    assert bank.staleness().tolist() == [-1, -1, -1, -1]
    f = torch.ones(3, 2)
    bank.enqueue(f, torch.tensor([0, 0, 2]))     # step 1: slots 0-2
    bank.enqueue(f[:1], torch.tensor([1]))       # step 2: slot 3
    bank.enqueue(f[:1], torch.tensor([2]))       # step 3: slot 0 (oldest) overwritten
    assert bank.write_step.tolist() == [3, 1, 1, 2]
    assert bank.staleness().tolist() == [0, 2, 2, 1]
    stats = memory_statistics(bank, many_shot_thr=100)
    # stored labels [2, 0, 2, 1]: shares 1/4, 1/4, 1/2
    assert stats['share_c0'] == 0.25 and stats['share_c1'] == 0.25 and stats['share_c2'] == 0.5
    assert stats['share_max'] == 0.5 and stats['share_min'] == 0.25
    assert stats['staleness_mean'] == pytest.approx(5 / 4) and stats['staleness_max'] == 2
    assert stats['staleness_many'] == 2.0                    # class 0 (slot 1)
    assert stats['staleness_tail'] == pytest.approx(1.0)     # slots 0, 2, 3: ages 0, 2, 1
    assert 'share_c0' not in memory_statistics(bank, per_class_max=2)
    # per-class rings record their write step too; reset forgets it
    rings = MODELS.build(dict(type='RebalancedFIFOMemory', size=None, per_class_slots=2, dim=2,
                              num_classes=2, beta=0.0, class_counts=[5, 5]))
    rings.enqueue(torch.ones(3, 2), torch.tensor([1, 1, 1]))
    rings.enqueue(torch.ones(1, 2), torch.tensor([0]))
    assert rings.write_step.tolist() == [2, -1, 1, 1]
    assert rings.staleness().tolist() == [0, -1, 1, 1]
    rings.reset()
    assert rings.write_step.tolist() == [-1] * 4


def test_memory_loads_checkpoint_without_write_step():
    bank = MODELS.build(dict(type='RebalancedFIFOMemory', size=3, dim=2, num_classes=2,
                             beta=0.0, class_counts=[5, 5]))
    bank.enqueue(torch.ones(2, 2), torch.tensor([0, 1]))
    state = bank.state_dict()
    fresh = MODELS.build(dict(type='RebalancedFIFOMemory', size=3, dim=2, num_classes=2,
                              beta=0.0, class_counts=[5, 5]))
    fresh.load_state_dict(state)                 # resume keeps the ages
    assert fresh.staleness().tolist() == [0, 0, -1]
    old = {k: v for k, v in state.items() if k != 'write_step'}
    result = fresh.load_state_dict(old)          # strict: no missing key for old checkpoints
    assert not result.missing_keys and fresh.write_step.tolist() == [-1, -1, -1]
    assert math.isnan(memory_statistics(fresh)['staleness_mean'])
