"""LDAM-DRW, RIDE (diversity loss, router, multi-expert backbone) and MBJ + RIDE: values against
hand-computed references."""
import copy
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401
from lt_plugins.engine.hooks import DRWHook
from lt_plugins.evaluation import ExpertUsage
from lt_plugins.models.losses import LDAMLoss, RIDEDiversityLoss
from lt_plugins.models.losses.ldam_loss import drw_class_weights, ldam_margins
from lt_plugins.models.losses.ride_diversity_loss import ride_temperature_weights


# -- LDAM / DRW ------------------------------------------------------------------------------
def test_ldam_margins_hand_computed():
    # n^(-1/4) = 1/sqrt(10), 1/2, 1 -> scaled so that the max is 0.5
    m = ldam_margins(torch.tensor([100, 16, 1]), max_margin=0.5)
    torch.testing.assert_close(m, torch.tensor([0.5 / math.sqrt(10), 0.25, 0.5]))
    assert ldam_margins(torch.tensor([5000, 50]), 0.3).max().item() == pytest.approx(0.3)


def test_drw_weights_hand_computed():
    # beta 0.5: E = (1 - 0.5^n) / 0.5 = 1, 1.5 -> 1/E = 1, 2/3 -> sum to C = 2: 1.2, 0.8
    torch.testing.assert_close(drw_class_weights(torch.tensor([1, 2]), 0.5),
                               torch.tensor([1.2, 0.8]))
    counts = [5000, 500, 50]
    inv = [(1 - 0.9999) / (1 - 0.9999 ** n) for n in counts]
    ref = torch.tensor([3 * w / sum(inv) for w in inv])
    torch.testing.assert_close(drw_class_weights(torch.tensor(counts), 0.9999), ref)
    torch.testing.assert_close(drw_class_weights(torch.tensor(counts), 0.0), torch.ones(3))
    with pytest.raises(ValueError, match='no training samples'):
        drw_class_weights(torch.tensor([3, 0]))


def test_ldam_loss_value_and_drw_switch():
    loss = LDAMLoss(max_margin=0.5, scale=2.0, drw_beta=0.5, class_counts=[1, 2])
    # margins: 1^-1/4 = 1, 2^-1/4 -> [0.5, 0.5 * 2^-0.25]
    m = [0.5, 0.5 * 2 ** -0.25]
    z = torch.tensor([[1.0, 0.5], [0.2, 0.3]])
    y = torch.tensor([0, 1])

    def ce(row, target):
        row = list(row)
        row[target] -= 2.0 * m[target]
        return -row[target] + math.log(sum(math.exp(v) for v in row))

    l0, l1 = ce(z[0].tolist(), 0), ce(z[1].tolist(), 1)
    assert loss(z, y).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)
    loss.set_drw_enabled(True)  # weights 1.2, 0.8 (above): weighted mean
    assert loss(z, y).item() == pytest.approx((1.2 * l0 + 0.8 * l1) / 2.0, rel=1e-6)


def test_ldam_loss_needs_counts_and_reads_them_from_the_hook_interface():
    loss = LDAMLoss()
    with pytest.raises(RuntimeError, match='ClassCountsHook'):
        loss(torch.zeros(2, 3), torch.tensor([0, 1]))
    loss.set_class_counts(torch.tensor([9, 3, 1]))
    torch.testing.assert_close(loss.margins, ldam_margins(torch.tensor([9, 3, 1]), 0.5))
    fresh = LDAMLoss()
    fresh.load_state_dict(loss.state_dict())  # buffers sized by the checkpoint
    torch.testing.assert_close(fresh.drw_weights, loss.drw_weights)


def test_drw_hook_switches_every_target_by_epoch():
    loss, div = LDAMLoss(class_counts=[3, 1]), RIDEDiversityLoss(class_counts=[3, 1])
    model = torch.nn.ModuleDict(dict(a=loss, b=div))
    hub = SimpleNamespace(update_scalar=lambda *a: None)
    runner = SimpleNamespace(model=model, epoch=0, iter=0, message_hub=hub,
                             logger=SimpleNamespace(info=lambda *a: None))
    hook = DRWHook(start_epoch=2)
    for epoch, expected in [(0, False), (1, False), (2, True), (5, True)]:
        runner.epoch = epoch
        hook.before_train_iter(runner, 0)
        assert loss.drw_enabled is expected and div.drw_enabled is expected
    with pytest.raises(ValueError, match='exactly one'):
        DRWHook()


# -- diversity loss --------------------------------------------------------------------------
def test_temperature_weights_hand_computed():
    # p = 0.75, 0.25; w = 2 p 0.5 + 0.5 = 1.25, 0.75 -> / 1.25
    torch.testing.assert_close(ride_temperature_weights(torch.tensor([3, 1]), 0.5),
                               torch.tensor([1.0, 0.6]))


@pytest.mark.parametrize('drw', [False, True])
def test_diversity_loss_value(drw):
    div = RIDEDiversityLoss(loss_weight=-0.2, base_temperature=2.0, reweight_factor=0.5,
                            class_counts=[3, 1], drw_enabled=drw)
    expert = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    ens = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    temps = [2.0, 1.2] if drw else [2.0, 2.0]
    kl = 0.0
    for e_row, m_row in zip(expert.tolist(), ens.tolist()):
        p = [math.exp(v / t) for v, t in zip(m_row, temps)]
        q = [math.exp(v / t) for v, t in zip(e_row, temps)]
        p = [v / sum(p) for v in p]
        q = [v / sum(q) for v in q]
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    t_mean = sum(temps) / 2
    assert div(expert, ens).item() == pytest.approx(-0.2 * t_mean ** 2 * kl / 2, rel=1e-5)


def test_diversity_gradient_pushes_expert_away_from_ensemble():
    torch.manual_seed(0)
    div = RIDEDiversityLoss(loss_weight=-0.2, base_temperature=1.5)
    expert = torch.randn(4, 5, requires_grad=True)
    ens = torch.randn(4, 5, requires_grad=True)
    div(expert, ens).backward()
    assert ens.grad is None  # the ensemble is a fixed target
    q = F.softmax(expert.detach() / 1.5, 1)
    p = F.softmax(ens.detach() / 1.5, 1)
    # d KL(p || q) / dz = (q - p) / (T N); times weight * T^2
    torch.testing.assert_close(expert.grad, -0.2 * 1.5 ** 2 * (q - p) / (1.5 * 4))
    kl = lambda z: F.kl_div(F.log_softmax(z / 1.5, 1), p, reduction='batchmean')  # noqa: E731
    stepped = expert.detach() - 0.5 * expert.grad
    assert kl(stepped) > kl(expert.detach())  # descent on the loss = more diverse


# -- RIDE head / classifier ------------------------------------------------------------------
def _samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def _head(**kw):
    cfg = dict(type='RIDEHead', num_classes=4, in_channels=6, num_experts=3,
               loss=dict(type='LDAMLoss', class_counts=[40, 20, 8, 2]),
               diversity=dict(type='RIDEDiversityLoss', class_counts=[40, 20, 8, 2]))
    cfg.update(kw)
    return MODELS.build(cfg)


def test_ride_head_loss_is_sum_of_expert_losses():
    torch.manual_seed(0)
    head = _head()
    feats = tuple(torch.randn(5, 6) for _ in range(3))
    y = torch.tensor([0, 1, 2, 3, 0])
    out = head.loss(feats, _samples(y))
    logits = [30 * F.normalize(x, dim=1) @ F.normalize(head.weight[k], dim=1).t()
              for k, x in enumerate(feats)]
    ens = sum(logits) / 3
    ref_cls = sum(head.loss_module(z, y) for z in logits)
    ref_div = sum(head.diversity(z, ens) for z in logits)
    torch.testing.assert_close(out['loss_cls'], ref_cls)
    torch.testing.assert_close(out['loss_diversity'], ref_div)
    torch.testing.assert_close(head(feats), ens)
    with pytest.raises(ValueError, match='one feature per expert'):
        head.loss(feats[:2], _samples(y))


def test_router_targets_hand_made():
    head = _head(router=dict(top_choices=2))
    # 3 samples, 3 experts, target class 0. cumulative sums decide correctness:
    # s0: e1 right                          -> [F, F]
    # s1: e1 wrong, e1+e2 right             -> [T, F]
    # s2: e1 wrong, e1+e2 wrong, all right  -> [T, T]
    logits = torch.tensor([
        [[1., 0, 0, 0], [0, 1., 0, 0], [0, 1., 0, 0]],
        [[0, 0, 0, 0], [2., 0, 0, 0], [0.5, 0, 0, 0]],
        [[0, 0, 0, 0], [0, 0, 0, 0], [3., 0, 0, 0]],
    ])
    target = torch.zeros(3, dtype=torch.long)
    helpful = head.router_targets(logits, target)
    assert helpful.tolist() == [[False, False], [True, False], [True, True]]


def _ride_model(router=None, **head_kw):
    return MODELS.build(dict(
        type='RIDEClassifier',
        backbone=dict(type='MultiExpertBackbone', model_name='resnet20_cifar', num_experts=3),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='RIDEHead', num_classes=4, in_channels='auto', num_experts=3,
                  router=router, loss=dict(type='LDAMLoss', class_counts=[40, 20, 8, 2]),
                  diversity=dict(type='RIDEDiversityLoss'), **head_kw),
        data_preprocessor=dict(type='ClsDataPreprocessor')))


def test_multi_expert_backbone_is_trunk_plus_independent_tails():
    torch.manual_seed(0)
    model = _ride_model()
    bb = model.backbone
    assert bb.out_channels == 64 and model.head.in_channels == 64
    x = torch.randn(2, 3, 16, 16)
    bb.eval()
    outs = bb(x)
    for k in range(3):
        torch.testing.assert_close(outs[k], bb.experts[k](bb.trunk(x)))
    w = [next(e.parameters()) for e in bb.experts]
    assert not torch.equal(w[0], w[1])  # independent initialisation
    narrow = MODELS.build(dict(type='MultiExpertBackbone', model_name='resnet32_cifar',
                               num_experts=2, tail_stages=2,
                               expert_kwargs=dict(widths=(16, 24, 48))))
    assert narrow.out_channels == 48 and narrow(torch.randn(1, 3, 8, 8))[1].shape[1] == 48
    # RIDE's reduce_dimension as a factor: 32 / 64 -> 24 / 48 on the two copied stages
    factor = MODELS.build(dict(type='MultiExpertBackbone', model_name='resnet32_cifar',
                               num_experts=2, tail_stages=2, width_factor=0.75))
    for a, b in zip(factor.state_dict().values(), narrow.state_dict().values()):
        assert a.shape == b.shape
    with pytest.raises(ValueError, match='not mapped'):
        MODELS.build(dict(type='MultiExpertBackbone', model_name='regnetx_002',
                          num_experts=2, width_factor=0.5))
    with pytest.raises(ValueError, match='input channels'):
        MODELS.build(dict(type='MultiExpertBackbone', model_name='resnet32_cifar',
                          num_experts=2, tail_stages=1,
                          expert_kwargs=dict(widths=(16, 24, 48))))


def test_routed_inference_accounting():
    torch.manual_seed(0)
    model = _ride_model(router=dict(top_choices=2)).eval()
    head = model.head
    x = torch.randn(6, 3, 8, 8)
    calls = []
    real = model.backbone.forward_expert
    model.backbone.forward_expert = lambda s, k: (calls.append((k, s.shape[0])), real(s, k))[1]
    # router 0 says "go on" for samples 0..3, router 1 stops everyone -> 2, 2, 2, 2, 1, 1
    with torch.no_grad():
        for fc in head.router_fc:
            fc.weight.zero_()
            fc.bias.fill_(-5.0)
    orig = head.router_logit

    def scripted(k, feat, mean_logits):
        base = orig(k, feat, mean_logits)
        if k == 0:
            return base + torch.tensor([10.] * 4 + [0.] * 2)
        return base
    head.router_logit = scripted
    out = model(x, _samples([0] * 6), mode='predict')
    used = [int(o.num_experts) for o in out]
    assert used == [2, 2, 2, 2, 1, 1]
    assert calls == [(0, 6), (1, 4)]  # expert 2 ran on 4 samples only, expert 3 never
    with torch.no_grad():
        feats = model.neck(model.backbone(x))
        logits = head.all_expert_logits(feats)
    ref = torch.cat([logits[:2, :4].mean(0), logits[0, 4:]])
    scores = torch.stack([o.pred_score for o in out])
    torch.testing.assert_close(scores, F.softmax(ref, 1))
    metric = ExpertUsage(num_experts=3)
    metric.process(None, [o.to_dict() for o in out])
    res = metric.compute_metrics(metric.results)
    assert res['mean_experts'] == pytest.approx(10 / 6)
    assert res['frac_2_experts'] == pytest.approx(400 / 6) and res['frac_3_experts'] == 0
    assert res['relative_expert_compute'] == pytest.approx(10 / 18)
    head.routing = False  # all experts
    assert [int(o.num_experts) for o in model(x, _samples([0] * 6), mode='predict')] == [3] * 6


def test_router_training_freezes_everything_else():
    torch.manual_seed(0)
    model = _ride_model(router=dict(top_choices=2), train_router=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(('head.router_hidden', 'head.router_fc'))
                             for n in trainable)
    model.train()
    assert not model.backbone.trunk[1].training  # the stem BN keeps its statistics
    losses = model(torch.randn(4, 3, 8, 8), _samples([0, 1, 2, 3]), mode='loss')
    assert set(losses) == {'loss_router', 'router_target_rate'}
    losses['loss_router'].backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
    # the default stage: router frozen, so DDP never waits for its gradients
    plain = _ride_model(router=dict(top_choices=2))
    assert not any(p.requires_grad for p in plain.head.router_parameters())


@pytest.mark.parametrize('sharing', ['per_expert', 'shared'])
def test_mbj_memory_on_ride(sharing):
    torch.manual_seed(0)
    head = _head(mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=0.0, size=8),
                          eta=15.0, sharing=sharing))
    assert len(head.memories) == (3 if sharing == 'per_expert' else 1)
    feats = tuple(torch.randn(5, 6) for _ in range(3))
    y = torch.tensor([0, 1, 2, 3, 0])
    out = head.loss(feats, _samples(y))
    # beta = 0 admits everything: the memory holds this batch, read back per expert
    ref = sum(head.loss_module(head.expert_logits(k, feats[k]), y) for k in range(3))
    torch.testing.assert_close(out['loss_memory'], 15.0 * ref)
    head.set_memory_enabled(False)
    assert 'loss_memory' not in head.loss(feats, _samples(y))


def test_ride_head_with_ce_and_linear_experts():
    torch.manual_seed(0)
    head = _head(classifier='linear', loss=dict(type='CrossEntropyLoss'), diversity=None)
    feats = tuple(torch.randn(5, 6) for _ in range(3))
    y = torch.tensor([0, 1, 2, 3, 0])
    out = head.loss(feats, _samples(y))
    ref = sum(F.cross_entropy(x @ head.weight[k].t() + head.bias[k], y)
              for k, x in enumerate(feats))
    torch.testing.assert_close(out['loss_cls'], ref)
    assert set(out) == {'loss_cls'}
    with pytest.raises(ValueError, match='scale'):
        _head(loss=dict(type='LDAMLoss', scale=16.0))


def test_iem_memory_read_on_ride_keeps_the_experts_and_averages_with_the_ensemble():
    """RIDEHead(memory_reader=...): keys are the unit-norm concatenation of the normalised
    expert features, values the ensemble's softmax at the true class (IEM Eq. 3); predictions
    average softmax(ensemble) with the Eq. 1 read; weights 1 / 0 give RIDE's own scores."""
    torch.manual_seed(0)
    plain = _head()
    head = _head(memory_reader=dict(capacity=4, num_neighbors=2))
    head.load_state_dict(plain.state_dict(), strict=False)
    assert head.memory_reader.dim == 18
    feats = tuple(torch.randn(5, 6) for _ in range(3))
    y = torch.tensor([0, 1, 2, 3, 0])
    out = head.loss(feats, _samples(y))
    assert set(out) == {'loss_cls', 'loss_diversity'}
    keys = torch.cat([F.normalize(x, dim=1) for x in feats], 1) / 3 ** 0.5
    torch.testing.assert_close(keys.norm(dim=1), torch.ones(5))
    values = plain(feats).softmax(1).gather(1, y.view(-1, 1)).squeeze(1)
    mem = head.memory_reader.memory
    for c in range(4):   # class c holds its samples' keys and values
        stored = mem.valid[c]
        got = sorted(zip(mem.values[c][stored].tolist(), mem.keys[c][stored].sum(1).tolist()))
        ref = sorted(zip(values[y == c].tolist(), keys[y == c].sum(1).tolist()))
        assert len(got) == len(ref)
        for (gv, gk), (rv, rk) in zip(got, ref):
            assert gv == pytest.approx(rv, abs=1e-6) and gk == pytest.approx(rk, abs=1e-5)
    queries = tuple(torch.randn(2, 6) for _ in range(3))
    qkeys = torch.cat([F.normalize(x, dim=1) for x in queries], 1) / 3 ** 0.5
    ens = plain(queries).softmax(1)
    scores = torch.stack([p.pred_score for p in head.predict(queries)])
    torch.testing.assert_close(scores, 0.5 * ens + 0.5 * mem.read_all(qkeys, 'class'))
    labels = torch.cat([p.pred_label for p in head.predict(queries)])
    assert labels.tolist() == scores.argmax(1).tolist()
    head.memory_reader.inference_weights = dict(classifier=1.0, memory=0.0)
    torch.testing.assert_close(torch.stack([p.pred_score for p in head.predict(queries)]),
                               torch.stack([p.pred_score for p in plain.predict(queries)]))
    with pytest.raises(ValueError, match='routing=False'):
        _head(router=dict(top_choices=2), memory_reader=dict(capacity=4, num_neighbors=2))
    _head(router=dict(top_choices=2), routing=False, memory_reader=dict(capacity=4, num_neighbors=2))
    with pytest.raises(ValueError, match='set by the head'):
        _head(memory_reader=dict(dim=6))


def test_feature_noise_on_ride_is_per_expert_on_tail_rows_and_trains_on_noisy_logits():
    """RIDEHead(generator=dict(augment='gaussian')): in the loss every expert classifies its
    own noisy copy of the tail rows (classes at or below the median count: 2 and 3 here), head
    rows stay clean; a memory reader is written with the clean ensemble; prediction is clean."""
    torch.manual_seed(0)
    plain = _head(memory_reader=dict(capacity=4, num_neighbors=2))
    head = _head(memory_reader=dict(capacity=4, num_neighbors=2),
                 generator=dict(augment='gaussian', noise_std=2.0, head_threshold='median',
                                class_counts=[40, 20, 8, 2], seed=3))
    result = head.load_state_dict(plain.state_dict(), strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert head.generator.head_mask().tolist() == [True, True, False, False]
    x0 = torch.randn(5, 6)
    feats = (x0, x0, x0)                              # the same features for every expert
    y = torch.tensor([0, 1, 2, 3, 0])
    twin = copy.deepcopy(head.generator)
    noisy = tuple(twin(x, y) for x in feats)          # the draws the head makes, in order
    tail = y >= 2
    for x, xn in zip(feats, noisy):
        torch.testing.assert_close(xn[~tail], x[~tail])
        assert (xn[tail] - x[tail]).abs().min() > 0
    assert not torch.allclose(noisy[0][tail], noisy[1][tail])   # independent per expert
    out = head.loss(feats, _samples(y))
    logits = torch.stack([head.expert_logits(k, x) for k, x in enumerate(noisy)])
    torch.testing.assert_close(out['loss_cls'], sum(head.loss_module(z, y) for z in logits))
    torch.testing.assert_close(out['loss_diversity'],
                               sum(head.diversity(z, logits.mean(0)) for z in logits))
    assert int(head.generator.aug_step) == 3 and 'generator.aug_step' in head.state_dict()
    plain.loss(feats, _samples(y))       # same clean writes as the head without noise
    torch.testing.assert_close(head.memory_reader.memory.values, plain.memory_reader.memory.values)
    q = tuple(torch.randn(2, 6) for _ in range(3))
    torch.testing.assert_close(head(q), plain(q))
    clean = _head()
    clean.load_state_dict(plain.state_dict(), strict=False)
    assert not torch.allclose(head.loss(feats, _samples(y))['loss_cls'],
                              clean.loss(feats, _samples(y))['loss_cls'])
    with pytest.raises(ValueError, match="one of \\('gaussian', 'dropout'\\)"):
        _head(generator=dict(augment='stg'))
    with pytest.raises(ValueError, match='set by the head'):
        _head(generator=dict(in_channels=6))
