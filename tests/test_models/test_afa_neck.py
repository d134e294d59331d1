"""AFANeck: Eq. 1-6 against a brute-force reference, Eq. 9-11 generation, errors."""
import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample

from lt_plugins.models.necks import AFANeck
from lt_plugins.memory.rebalanced_fifo import counter_seed
from lt_plugins.models.necks.afa_neck import generation_counts, sample_pairs


def _samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def _neck(**kwargs):
    cfg = dict(in_channels=8, feat_size=(4, 3), placement='after_last_stage')
    cfg.update(kwargs)
    torch.manual_seed(0)
    return AFANeck(**cfg)


def _reference(neck, x):
    """Eq. 1-6 written out per sample / per channel pair with explicit loops."""
    b, d, h, w = x.shape
    hw = h * w
    out = {k: torch.zeros(b, d, h, w, dtype=torch.float64) for k in ('v', 'x_class', 'mask')}
    wq = neck.qkv.weight.double()
    bq = neck.qkv.bias.double()
    for n in range(b):
        xf = x[n].double().reshape(d, hw)
        if neck.qkv_mode == 'linear':
            q = xf @ wq[:hw].T + bq[:hw]
            k = xf @ wq[hw:2 * hw].T + bq[hw:2 * hw]
            v = xf @ wq[2 * hw:].T + bq[2 * hw:]
        else:
            wc = wq.reshape(3 * d, d)
            q = wc[:d] @ xf + bq[:d, None]
            k = wc[d:2 * d] @ xf + bq[d:2 * d, None]
            v = wc[2 * d:] @ xf + bq[2 * d:, None]
        scores = torch.zeros(d, d, dtype=torch.float64)
        for i in range(d):
            for j in range(d):
                scores[i, j] = (q[i] * k[j]).sum() / math.sqrt(hw)
        att = torch.softmax(scores, dim=1) @ v  # Eq. 1
        se = neck.se
        s = att.mean(1)
        s = torch.relu(se.fc1.weight.double().reshape(-1, d) @ s + se.fc1.bias.double())
        s = torch.sigmoid(se.fc2.weight.double().reshape(d, -1) @ s + se.fc2.bias.double())
        logits = att * s[:, None] + att  # Eq. 2-3
        out.setdefault('logits', torch.zeros(b, d, h, w, dtype=torch.float64))
        out['logits'][n] = logits.reshape(d, h, w)
        mask = torch.softmax(logits, dim=0 if neck.mask_axis == 'channel' else 1)
        out['mask'][n] = mask.reshape(d, h, w)
        out['v'][n] = v.reshape(d, h, w)
        out['x_class'][n] = (mask * v).reshape(d, h, w)
    return out


@pytest.mark.parametrize('qkv', ['linear', 'conv1x1'])
@pytest.mark.parametrize('mask_axis', ['channel', 'spatial'])
@pytest.mark.parametrize('grad', [True, False])  # no-grad runs the in-place inference path
def test_decomposition_matches_reference_and_identities(qkv, mask_axis, grad):
    neck = _neck(qkv=qkv, mask_axis=mask_axis).double()
    torch.manual_seed(1)
    x = torch.randn(3, 8, 4, 3, dtype=torch.float64)
    with torch.set_grad_enabled(grad):
        parts = neck.decompose(x)
        enhanced = neck.enhance(x)
    ref = _reference(neck, x)
    torch.testing.assert_close(enhanced, x + ref['x_class'])
    for key in ('v', 'mask', 'x_class'):
        torch.testing.assert_close(parts[key], ref[key])
    # Eq. 5 and 6
    torch.testing.assert_close(parts['x_class'] + parts['x_var'], parts['v'])
    torch.testing.assert_close(parts['x_enh'], x + parts['x_class'])
    # mask normalisation along the documented axis
    axis_sum = parts['mask'].flatten(2).sum(1 if mask_axis == 'channel' else 2)
    torch.testing.assert_close(axis_sum, torch.ones_like(axis_sum))


def test_no_attention_addition_keeps_input():
    neck = _neck(attention_addition=False)
    x = torch.randn(2, 8, 4, 3)
    torch.testing.assert_close(neck.decompose(x)['x_enh'], x)


@pytest.mark.parametrize('labels,alpha,gamma', [
    ([0] * 8 + [1] * 4 + [2] * 2 + [3, 4], 4.0, 1.0),
    ([3, 3, 1, 1, 7, 7, 7, 0], 0.0, 1.0),
    ([5, 5, 5, 2, 9], 2.0, 0.5),
    ([4] * 6, 4.0, 1.0),
    ([0] * 100 + [1] * 20 + [2] * 7 + [3], 4.0, 1.0),
])
def test_generation_counts_equal_eq10(labels, alpha, gamma):
    y = torch.tensor(labels)
    classes, counts, num_gen = generation_counts(y, alpha, gamma)
    b = len(labels)
    present = sorted(set(labels))
    assert classes.tolist() == present
    freq = {c: Fraction(labels.count(c), b) for c in present}
    a = Fraction(alpha).limit_denominator()
    weights = {c: (1 / freq[c]) ** int(a) if a.denominator == 1 else None for c in present}
    total = sum(weights.values())
    expected = [math.ceil(Fraction(gamma).limit_denominator() * weights[c] / total * b)
                for c in present]
    assert num_gen.tolist() == expected
    assert counts.tolist() == [labels.count(c) for c in present]


@pytest.mark.parametrize('labels', [
    [0] * 8 + [1] * 4 + [2] * 2 + [3, 4],
    [6] * 5,  # one class holds the whole batch
    [1, 2],
])
def test_pairs_are_valid(labels):
    y = torch.tensor(labels)
    classes, counts, num_gen = generation_counts(y, 4.0, 1.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx_class, idx_var, gen_labels = sample_pairs(y, classes, counts, num_gen, gen)
        assert (idx_class != idx_var).all()
        assert (y[idx_class] == gen_labels).all()
        assert ((idx_var >= 0) & (idx_var < len(labels))).all()
        assert torch.equal(torch.bincount(gen_labels, minlength=int(classes.max()) + 1)[classes],
                           num_gen)


def test_pairs_cover_every_candidate():
    """i ranges over all samples of its class, j over all other samples."""
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    classes, counts, _ = generation_counts(y, 4.0, 1.0)
    num_gen = torch.tensor([400, 400, 400])
    gen = torch.Generator().manual_seed(0)
    idx_class, idx_var, gen_labels = sample_pairs(y, classes, counts, num_gen, gen)
    for c, members in ((0, {0, 1, 2}), (1, {3, 4}), (2, {5})):
        assert set(idx_class[gen_labels == c].tolist()) == members
    for i in range(6):
        assert set(idx_var[idx_class == i].tolist()) == set(range(6)) - {i}


def test_generate_features_values_and_labels():
    neck = _neck()
    neck.train()
    torch.manual_seed(3)
    x_class, x_var = torch.randn(6, 8, 4, 3), torch.randn(6, 8, 4, 3)
    y = torch.tensor([0, 0, 0, 0, 1, 2])
    rng = torch.get_rng_state()
    x_gen, y_gen = neck.generate_features(x_class, x_var, y)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left alone
    assert int(neck.pair_step) == 1
    classes, counts, num_gen = generation_counts(y, 4.0, 1.0)
    # the pairs come from the generator keyed by (pair_seed, step 0, rank 0)
    key = counter_seed(counter_seed(int(neck.pair_seed), 0), 0)
    i, j, labels = sample_pairs(y, classes, counts, num_gen,
                                torch.Generator().manual_seed(key))
    assert torch.equal(y_gen, labels)
    assert x_gen.shape[0] == int(num_gen.sum())
    torch.testing.assert_close(x_gen, x_class[i] + x_var[j])
    # the next batch draws other pairs; a neck restored to step 0 draws the same again
    again, _ = neck.generate_features(x_class, x_var, y)
    assert not torch.equal(again, x_gen)
    neck.pair_step.zero_()
    torch.testing.assert_close(neck.generate_features(x_class, x_var, y)[0], x_gen,
                               rtol=0, atol=0)


def test_batch_of_one_generates_nothing():
    neck = _neck()
    neck.train()
    (pooled, ), extras = neck(torch.randn(1, 8, 4, 3), data_samples=_samples([3]))
    assert pooled.shape == (1, 8)
    assert extras['gen_labels'].numel() == 0
    assert extras['log_vars']['afa_num_gen'].item() == 0


def test_forward_training_and_inference():
    neck = _neck()
    labels = [0] * 8 + [1] * 4 + [2] * 2 + [3, 4]
    x = torch.randn(16, 8, 4, 3, requires_grad=True)
    neck.train()
    torch.manual_seed(0)
    (pooled, ), extras = neck(x, data_samples=_samples(labels))
    _, _, num_gen = generation_counts(torch.tensor(labels), 4.0, 1.0)
    assert pooled.shape == (16 + int(num_gen.sum()), 8)
    assert extras['gen_labels'].numel() == int(num_gen.sum())
    ratio = extras['log_vars']['afa_class_ratio']
    assert 0 < ratio.item() < 1
    pooled.sum().backward()
    assert neck.qkv.weight.grad.abs().sum() > 0 and neck.se.fc1.weight.grad.abs().sum() > 0
    # inference: enhanced features only, same batch size, equals pooled X_enh
    neck.eval()
    (out, ) = neck(x.detach(), data_samples=_samples(labels))[0]
    assert out.shape == (16, 8)
    (plain, ) = neck(x.detach())
    torch.testing.assert_close(plain, F.adaptive_avg_pool2d(
        neck.decompose(x.detach())['x_enh'], 1).flatten(1))
    torch.testing.assert_close(out, plain)


def test_switches_that_stop_generation():
    labels = _samples([0, 0, 0, 1])
    x = torch.randn(4, 8, 4, 3)
    for kwargs, lbls in ((dict(generate=False), 2.0), (dict(gamma=0.0), 2.0), ({}, 0.0)):
        neck = _neck(**kwargs)
        neck.set_lbls_weight(lbls)
        neck.train()
        (pooled, ), extras = neck(x, data_samples=labels)
        assert pooled.shape[0] == 4 and 'gen_labels' not in extras


def test_tail_runs_on_real_and_generated():
    neck = _neck(placement='before_last_stage')
    seen = []

    def tail(t):
        seen.append(t.shape[0])
        return t * 2

    neck.train()
    (pooled, ), extras = neck(torch.randn(4, 8, 4, 3), data_samples=_samples([0, 0, 0, 1]),
                              tail=tail)
    assert seen == [4 + extras['gen_labels'].numel()] and pooled.shape[0] == seen[0]
    with pytest.raises(ValueError, match="placement='after_last_stage'"):
        neck(torch.randn(4, 8, 4, 3))


def test_clear_errors():
    with pytest.raises(ValueError, match='alpha must be >= 0'):
        AFANeck(in_channels=8, feat_size=(4, 4), alpha=-1)
    with pytest.raises(ValueError, match='gamma must be >= 0'):
        AFANeck(in_channels=8, feat_size=(4, 4), gamma=-0.5)
    with pytest.raises(ValueError, match='feat_size'):
        AFANeck(in_channels=8, qkv='linear')
    with pytest.raises(ValueError, match='mask_axis'):
        AFANeck(in_channels=8, feat_size=(4, 4), mask_axis='batch')
    neck = _neck()
    with pytest.raises(ValueError, match=r'feat_size=\(5, 5\)'):
        neck.decompose(torch.randn(2, 8, 5, 5))
    with pytest.raises(ValueError, match='in_channels=8'):
        neck.decompose(torch.randn(2, 4, 4, 3))
    # 1x1 convolutions accept any size
    conv = _neck(qkv='conv1x1', feat_size=None)
    assert conv.decompose(torch.randn(2, 8, 5, 7))['x_enh'].shape == (2, 8, 5, 7)
