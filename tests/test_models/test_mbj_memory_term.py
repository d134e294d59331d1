"""MBJMemoryTerm (MBJ Eq. 1-2 as a part) and the two heads that are its presets (MBJClsHead,
RIDEHead with ``mbj``): same checkpoint keys and the same losses as before the split."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401  (registration)
from lt_plugins.memory import RebalancedFIFOMemory
from lt_plugins.models.parts import MBJMemoryTerm


def _samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


COUNTS = [100, 40, 10, 3]
RIDE_COUNTS = [40, 20, 8, 2]
CASES = {
    'mbj_linear_F': dict(
        type='MBJClsHead', num_classes=4, in_channels=6, eta=15.0,
        memory=dict(type='RebalancedFIFOMemory', beta=1.5, class_counts=COUNTS)),
    'mbj_cosine_WF_capacity': dict(
        type='MBJClsHead', num_classes=4, in_channels=6, eta=5.0, classifier='cosine',
        cosine_scale=10.0, variant='WF', memory_reduction='capacity',
        memory=dict(type='RebalancedFIFOMemory', beta=1.0, class_counts=COUNTS, seed=3)),
    'mbj_linear_W': dict(
        type='MBJClsHead', num_classes=4, in_channels=6, variant='W',
        memory=dict(type='RebalancedFIFOMemory', beta=1.5, class_counts=COUNTS)),
    'mbj_linear_FRRJ_batch': dict(
        type='MBJClsHead', num_classes=4, in_channels=6, variant='FR+RJ',
        memory_reduction='batch', rj_std=0.2,
        memory=dict(type='RebalancedFIFOMemory', beta=1.5, class_counts=COUNTS)),
    'ride_per_expert': dict(
        type='RIDEHead', num_classes=4, in_channels=6, num_experts=3,
        loss=dict(type='LDAMLoss', class_counts=RIDE_COUNTS),
        diversity=dict(type='RIDEDiversityLoss', class_counts=RIDE_COUNTS),
        mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=1.5, class_counts=RIDE_COUNTS),
                 eta=15.0, sharing='per_expert')),
    'ride_shared_linear': dict(
        type='RIDEHead', num_classes=4, in_channels=6, num_experts=2, classifier='linear',
        loss=dict(type='CrossEntropyLoss'), diversity=None,
        mbj=dict(memory=dict(type='RebalancedFIFOMemory', beta=1.0, size=10,
                             class_counts=RIDE_COUNTS, seed=2), eta=7.0, sharing='shared')),
}

# Recorded with the heads as they were before the memory term was split out (commit b9d1163,
# with the procedure of `_run` below): 4 SGD steps on fixed batches, float32, on one machine.
# Margin argument for comparing them on any CPU at REL: other CPUs' kernels (vector width,
# summation order, exp/log approximations) differ from these by a few float32 ulps per
# operation (ATEN_CPU_CAPABILITY=default against AVX2 here: at most 4e-7 relative), and these
# values respond smoothly and weakly to such differences: perturbing every parameter by a
# relative 1e-6 (about 8 ulps) moves them by at most 5e-6, 1e-4 by at most 5e-4 (no choice
# flips: the only discrete choices, the bank admissions, compare seeded draws with
# probabilities from the class counts, the closest draw 2.7e-4 from its probability).
# `test_recorded_values_have_a_margin` re-measures
# this on the machine that runs it: the comparison at REL = 1e-4 keeps a margin of 10 over
# an 8-ulp difference in every weight.
REL, ABS = 1e-4, 1e-6
PERTURB = 1e-6
REFERENCE = {
    'mbj_linear_F': [
        {'loss': 1.5620027780532837, 'loss_memory': 27.379497528076172,
         'grad_norm': 18.740250119648817},
        {'loss': 1.8922258615493774, 'loss_memory': 9.68845272064209,
         'grad_norm': 11.100218900158092},
        {'loss': 3.31968092918396, 'loss_memory': 2.8748559951782227,
         'grad_norm': 2.515456054490999},
        {'loss': 1.6829930543899536, 'loss_memory': 4.395659923553467,
         'grad_norm': 4.374246860145596},
    ],
    'mbj_cosine_WF_capacity': [
        {'loss': 4.442471504211426, 'loss_memory': 13.60996150970459,
         'grad_norm': 289.8210831378877},
        {'loss': 6.574339389801025, 'loss_memory': 18.202911376953125,
         'grad_norm': 0.9417951798520448},
        {'loss': 4.058375835418701, 'loss_memory': 15.589967727661133,
         'grad_norm': 1.0913661987602616},
        {'loss': 5.0588250160217285, 'loss_memory': 30.20697593688965,
         'grad_norm': 1.0420726798230349},
    ],
    'mbj_linear_W': [
        {'loss': 1.5620027780532837, 'loss_memory': 0.0, 'grad_norm': 0.6452684755948792},
        {'loss': 1.9431123733520508, 'loss_memory': 0.0, 'grad_norm': 0.9815434110696609},
        {'loss': 1.5407787561416626, 'loss_memory': 0.0, 'grad_norm': 0.9074230567190841},
        {'loss': 1.6038050651550293, 'loss_memory': 7.178496360778809,
         'grad_norm': 0.6859530242578943},
    ],
    'mbj_linear_FRRJ_batch': [
        {'loss': 1.5620027780532837, 'loss_memory': 8.937746047973633,
         'grad_norm': 6.727153470406936},
        {'loss': 1.8427118062973022, 'loss_memory': 9.887301445007324,
         'grad_norm': 8.053669402114773},
        {'loss': 1.9739488363265991, 'loss_memory': 0.0, 'grad_norm': 1.1428572032209758},
        {'loss': 1.4732245206832886, 'loss_memory': 7.788390159606934,
         'grad_norm': 6.820652193162236},
    ],
    'ride_per_expert': [
        {'loss_cls': 73.82866668701172, 'loss_diversity': -2.9148247241973877,
         'loss_memory': 1380.672119140625, 'grad_norm': 861.6604048324441},
        {'loss_cls': 63.289512634277344, 'loss_diversity': -3.8874502182006836,
         'loss_memory': 799.208984375, 'grad_norm': 68.30077267561542},
        {'loss_cls': 67.38858795166016, 'loss_diversity': -3.8568294048309326,
         'loss_memory': 861.9666748046875, 'grad_norm': 14.261855571159055},
        {'loss_cls': 54.450096130371094, 'loss_diversity': -3.4499073028564453,
         'loss_memory': 886.2693481445312, 'grad_norm': 13.329377463321949},
    ],
    'ride_shared_linear': [
        {'loss_cls': 3.3074698448181152, 'loss_memory': 23.807601928710938,
         'grad_norm': 16.128828893749002},
        {'loss_cls': 3.098869800567627, 'loss_memory': 15.472721099853516,
         'grad_norm': 7.21132807945641},
        {'loss_cls': 2.872342109680176, 'loss_memory': 12.917231559753418,
         'grad_norm': 6.581544170318054},
        {'loss_cls': 3.2163023948669434, 'loss_memory': 12.242300033569336,
         'grad_norm': 6.294651634475291},
    ],
}

# State-dict keys of the same heads before the split: the head's own entries and the prefixes
# under which a RebalancedFIFOMemory's buffers sit.
OWN_KEYS = {
    'mbj_linear_F': (['fc.bias', 'fc.weight'], ['memory']),
    'mbj_cosine_WF_capacity': (['weight'], ['memory', 'weight_memory']),
    'mbj_linear_W': (['fc.bias', 'fc.weight'], ['weight_memory']),
    'mbj_linear_FRRJ_batch': (['fc.bias', 'fc.weight'], ['memory']),
    'ride_per_expert': (['diversity.class_counts', 'diversity.temperature_weights',
                         'loss_module.class_counts', 'loss_module.drw_weights',
                         'loss_module.margins', 'weight'],
                        ['memories.0', 'memories.1', 'memories.2']),
    'ride_shared_linear': (['bias', 'weight'], ['memories.0']),
}
BANK_BUFFERS = ['class_counts', 'class_ptr', 'feats', 'labels', 'ptr', 'step', 'valid',
                'write_step']


def _perturb(module, rel):
    """Multiply every floating parameter and buffer by ``1 + rel * N(0, 1)`` (seeded)."""
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                t.mul_(1 + rel * torch.randn(t.shape, generator=gen, dtype=t.dtype))


def _run(cfg, perturb=0.0):
    """Seeded head (its weights perturbed by a relative ``perturb``), 4 SGD steps on fixed
    batches; per step the losses and the grad norm."""
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    if perturb:
        _perturb(head, perturb)
    gen = torch.Generator().manual_seed(1)
    K = cfg.get('num_experts')
    params = [p for p in head.parameters() if p.requires_grad]
    out = []
    for _ in range(4):
        y = torch.randint(0, 4, (12, ), generator=gen)
        feats = tuple(torch.randn(12, 6, generator=gen) for _ in range(K or 1))
        losses = head.loss(feats, _samples(y))
        grads = torch.autograd.grad(sum(losses.values()), params)
        step = {k: float(v.detach()) for k, v in losses.items()}
        step['grad_norm'] = float(sum(g.double().norm()**2 for g in grads)**0.5)
        out.append(step)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(0.1 * g)
    return head, out


@pytest.mark.parametrize('case', list(CASES))
def test_presets_reproduce_the_heads_before_the_split(case):
    torch.set_num_threads(1)
    head, steps = _run(CASES[case])
    for got, ref in zip(steps, REFERENCE[case]):
        assert set(got) == set(ref)
        for key in ref:
            assert got[key] == pytest.approx(ref[key], rel=REL, abs=ABS), (case, key)
    own, banks = OWN_KEYS[case]
    expected = set(own) | {f'{b}.{k}' for b in banks for k in BANK_BUFFERS}
    assert set(head.state_dict()) == expected
    # the banks sit at their old module paths (MBJMemoryStatsHook logs under these names)
    mods = dict(head.named_modules())
    assert all(isinstance(mods[b], RebalancedFIFOMemory) for b in banks)
    # ... and are the term's own banks, registered once (the term is not a sub-module)
    term = head.memory_term
    assert isinstance(term, MBJMemoryTerm) and term not in list(head.modules())
    term_banks = list(term.memories or []) + [term.weight_memory]
    assert all(any(mods[b] is t for t in term_banks) for b in banks)


@pytest.mark.parametrize('case', list(CASES))
def test_recorded_values_have_a_margin(case):
    """Round-off far above any CPU's (every weight off by ~8 float32 ulps) moves the recorded
    quantities by under a tenth of the tolerance they are compared with."""
    torch.set_num_threads(1)
    _, steps = _run(CASES[case])
    _, moved = _run(CASES[case], perturb=PERTURB)
    for got, base in zip(moved, steps):
        for key, value in base.items():
            assert got[key] == pytest.approx(value, rel=REL / 10, abs=ABS / 10), (case, key)


@pytest.mark.parametrize('case', ['mbj_cosine_WF_capacity', 'ride_per_expert'])
def test_preset_state_dict_round_trip_and_deepcopy(case):
    head, _ = _run(CASES[case])
    fresh = MODELS.build(CASES[case])
    fresh.load_state_dict(head.state_dict(), strict=True)
    for (k, a), b in zip(head.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    # a copy (EMA, model wrappers) keeps the term and the registered banks the same objects
    dup = copy.deepcopy(fresh)
    bank = dup.memory if case.startswith('mbj') else dup.memories[0]
    assert any(bank is t for t in list(dup.memory_term.memories)) and bank is not (
        fresh.memory if case.startswith('mbj') else fresh.memories[0])


def test_preset_switch_and_settings_go_to_the_term():
    head = MODELS.build(CASES['mbj_linear_F'])
    head.set_memory_enabled(False)
    assert head.memory_term.enabled is False and head.memory_enabled is False
    x, y = torch.randn(8, 6), torch.randint(0, 4, (8, ))
    assert set(head.loss((x, ), _samples(y))) == {'loss'} and int(head.memory.step) == 0
    head.memory_enabled = True
    head.eta = 2.0
    assert head.memory_term.eta == 2.0 and 'loss_memory' in head.loss((x, ), _samples(y))
    ride = MODELS.build(CASES['ride_per_expert'])
    assert ride.sharing == 'per_expert' and ride.eta == 15.0 and ride.memory_enabled
    ride.set_memory_enabled(False)
    assert not ride.memory_term.enabled
    plain = MODELS.build(dict(CASES['ride_per_expert'], mbj=None))
    plain.set_memory_enabled(True)  # no memory: stays off
    assert plain.memory_enabled is False and plain.memory_term is None


# ---- the part on its own ----------------------------------------------------------------------
def test_term_alone_equals_eta_times_ce_on_the_memory():
    torch.manual_seed(0)
    fc = nn.Linear(5, 3)
    term = MODELS.build(dict(type='MBJMemoryTerm', dim=5, num_classes=3, eta=4.0,
                             memory=dict(type='RebalancedFIFOMemory', beta=0.0, size=7)))
    assert [n for n, _ in term.named_modules()] == ['', 'memories', 'memories.0']
    history_x, history_y = [], []
    for _ in range(3):
        x, y = torch.randn(4, 5), torch.randint(0, 3, (4, ))
        history_x.append(x)
        history_y.append(y)
        loss = term(x, y, fc)
        # beta = 0 admits every sample: the memory is the last 7 features (FIFO)
        mem_x, mem_y = torch.cat(history_x)[-7:], torch.cat(history_y)[-7:]
        ref = 4.0 * F.cross_entropy(fc(mem_x), mem_y)
        torch.testing.assert_close(loss, ref)
    g = torch.autograd.grad(loss, fc.weight)[0]
    torch.testing.assert_close(g, torch.autograd.grad(ref, fc.weight)[0])


def test_term_shared_views_split_the_concatenated_bank():
    torch.manual_seed(1)
    fcs = [nn.Linear(3, 4), nn.Linear(3, 4)]
    term = MBJMemoryTerm(dim=3, num_classes=4, eta=2.0, num_views=2, sharing='shared',
                         memory=dict(type='RebalancedFIFOMemory', beta=0.0, size=5))
    assert term.memories[0].dim == 6 and len(term.memories) == 1
    xs, y = [torch.randn(4, 3), torch.randn(4, 3)], torch.tensor([0, 1, 2, 3])
    loss = term(xs, y, fcs, loss_fn=lambda z, t, n: F.cross_entropy(z, t, reduction='sum') / n)
    ref = 2.0 * sum(F.cross_entropy(fc(x), y) for fc, x in zip(fcs, xs))
    torch.testing.assert_close(loss, ref)


def test_term_empty_memory_gives_zero_and_switch_is_its_own():
    term = MBJMemoryTerm(dim=2, num_classes=2,
                         memory=dict(type='RebalancedFIFOMemory', beta=1.0,
                                     class_counts=[10**6, 1]))
    x = torch.randn(3, 2, requires_grad=True)
    loss = term(x, torch.tensor([0, 0, 0]), nn.Linear(2, 2))  # class 0: p = 1e-6
    assert loss.item() == 0 and term.memories[0].fill_ratio() == 0
    term.set_memory_enabled(False)
    assert term.enabled is False


def test_term_clear_errors():
    with pytest.raises(ValueError, match='variant'):
        MBJMemoryTerm(dim=2, num_classes=2, variant='X')
    with pytest.raises(ValueError, match='single feature view'):
        MBJMemoryTerm(dim=2, num_classes=2, variant='W', num_views=2)
    with pytest.raises(ValueError, match='memory.num_classes=3'):
        MBJMemoryTerm(dim=2, num_classes=2, memory=dict(num_classes=3))
    with pytest.raises(ValueError, match='memory.dim=4'):
        MBJMemoryTerm(dim=2, num_classes=2, memory=dict(dim=4))
    term = MBJMemoryTerm(dim=2, num_classes=2, variant='WF',
                         memory=dict(type='RebalancedFIFOMemory', beta=0.0))
    with pytest.raises(ValueError, match='`weight` rows'):
        term(torch.randn(2, 2), torch.tensor([0, 1]), nn.Linear(2, 2))
    two = MBJMemoryTerm(dim=2, num_classes=2, num_views=2)
    with pytest.raises(ValueError, match='2 feature view'):
        two(torch.randn(2, 2), torch.tensor([0, 1]), nn.Linear(2, 2))
