"""Unit tests of STG: Eq. 1 statistics, smoothing, losses, generator, Eq. 3-4, heads."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401
from lt_plugins.models.heads.stg_cls_head import STGClsHead
from lt_plugins.models.heads.stg_generator_head import STGGeneratorHead
from lt_plugins.models.stg import (SampleStatSmoother, SemanticTransformationGenerator,
                                   class_strength, dropout_augment, gaussian_noise_augment,
                                   head_tail_split, regression_loss, stg_augment,
                                   transformation_statistics)

COUNTS = [500, 300, 200, 120, 50, 20]  # head_threshold=100 -> heads 0-3, tails 4-5


def _samples(labels, idx=None):
    idx = range(len(labels)) if idx is None else idx
    return [DataSample(metainfo=dict(sample_idx=int(i))).set_gt_label(int(y))
            for y, i in zip(labels, idx)]


def _brute_force_stats(feats, labels, bank_feats, bank_labels, include_self):
    """Eq. 1 literally, one sample at a time, in float64 numpy."""
    feats, bank_feats = feats.double().numpy(), bank_feats.double().numpy()
    pool = np.concatenate([feats, bank_feats])
    pool_labels = np.concatenate([labels.numpy(), bank_labels.numpy()])
    mus, sigmas, ks = [], [], []
    for i in range(len(feats)):
        members = [j for j in range(len(pool)) if pool_labels[j] == labels[i] and
                   (include_self or j != i)]
        if not members:
            mus.append(np.zeros(feats.shape[1]))
            sigmas.append(np.zeros(feats.shape[1]))
            ks.append(0)
            continue
        trans = pool[members] - feats[i]
        mu = trans.sum(0) / len(members)
        mus.append(mu)
        sigmas.append(((mu - trans) ** 2).sum(0) / len(members))
        ks.append(len(members))
    return np.stack(mus), np.stack(sigmas), np.array(ks)


@pytest.mark.parametrize('include_self', [False, True])
def test_ground_truth_statistics_match_brute_force(include_self):
    g = torch.Generator().manual_seed(0)
    # offset 5 makes float32 cancellation visible if the centring were missing
    feats = torch.randn(12, 7, generator=g) + 5.0
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 0])  # class 2 and 4: single
    bank_feats = torch.randn(9, 7, generator=g) + 5.0
    bank_labels = torch.tensor([0, 1, 1, 3, 5, 5, 0, 3, 1])  # class 4 absent from the bank
    mu, sigma, k = transformation_statistics(feats, labels, bank_feats, bank_labels,
                                             include_self)
    ref_mu, ref_sigma, ref_k = _brute_force_stats(feats, labels, bank_feats, bank_labels,
                                                  include_self)
    torch.testing.assert_close(mu, torch.from_numpy(ref_mu).float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sigma, torch.from_numpy(ref_sigma).float(), atol=1e-5,
                               rtol=1e-5)
    assert k.tolist() == ref_k.tolist()
    lone = labels == 4  # single sample, not in the bank
    if include_self:
        assert k[lone].tolist() == [1]
        assert mu[lone].abs().max() == 0 and sigma[lone].abs().max() == 0
    else:
        assert k[lone].tolist() == [0]


def test_ground_truth_statistics_batch_only():
    feats = torch.tensor([[0., 0.], [2., 4.], [4., 2.], [9., 9.]])
    labels = torch.tensor([0, 0, 0, 1])
    mu, sigma, k = transformation_statistics(feats, labels, include_self=False)
    # sample 0: others (2,4),(4,2): mu = (3,3), Sigma = ((1,1)^2 ...) = (1, 1)
    torch.testing.assert_close(mu[0], torch.tensor([3., 3.]))
    torch.testing.assert_close(sigma[0], torch.tensor([1., 1.]))
    assert k.tolist() == [2, 2, 2, 0]


def test_smoother_ema_and_resume():
    sm = SampleStatSmoother(dim=2, momentum=0.5)
    idx = torch.tensor([3, 7])
    valid = torch.tensor([True, False])
    mu, sig = sm(idx, torch.tensor([[2., 2.], [5., 5.]]), torch.ones(2, 2), valid)
    torch.testing.assert_close(mu, torch.tensor([[2., 2.], [5., 5.]]))  # first estimate as is
    assert not bool(sm.seen[7])  # invalid estimates are not stored
    mu, sig = sm(idx, torch.tensor([[4., 0.], [1., 1.]]), 3 * torch.ones(2, 2),
                 torch.tensor([True, True]))
    torch.testing.assert_close(mu, torch.tensor([[3., 1.], [1., 1.]]))
    torch.testing.assert_close(sig, torch.tensor([[2., 2.], [3., 3.]]))
    # resume into a fresh (empty) smoother
    sm2 = SampleStatSmoother(dim=2, momentum=0.5)
    sm2.load_state_dict(sm.state_dict())
    mu2, _ = sm2(torch.tensor([3]), torch.tensor([[5., 5.]]), torch.ones(1, 2),
                 torch.tensor([True]))
    torch.testing.assert_close(mu2, torch.tensor([[4., 3.]]))
    with pytest.raises(ValueError, match='smooth_momentum'):
        SampleStatSmoother(2, momentum=1.0)


def test_regression_losses_hand_values():
    pm, ps = torch.tensor([[1., 2.]]), torch.tensor([[1., 4.]])
    gm, gs = torch.tensor([[0., 0.]]), torch.tensor([[2., 2.]])
    lm, ls = regression_loss(pm, ps, gm, gs, 'mse')
    assert lm.item() == pytest.approx(2.5) and ls.item() == pytest.approx(2.5)
    nll, zero = regression_loss(pm, ps, gm, gs, 'gaussian_nll')
    ref = 0.5 * np.mean([np.log(1.) + (2 + 1) / 1., np.log(4.) + (2 + 4) / 4.])
    assert nll.item() == pytest.approx(ref, rel=1e-6) and zero.item() == 0
    with pytest.raises(ValueError, match='loss_type'):
        regression_loss(pm, ps, gm, gs, 'l3')


def test_generator_shapes_positivity_and_tokens():
    torch.manual_seed(0)
    gen = SemanticTransformationGenerator(in_channels=16, num_classes=50)
    gen.init_weights()
    mu, sigma = gen(torch.randn(8, 16), torch.arange(8))
    assert mu.shape == sigma.shape == (8, 16) and bool((sigma > 0).all())
    assert abs(gen.tokens.mean().item()) < 0.1 and abs(gen.tokens.std().item() - 1) < 0.1
    # the token enters the input: a different token gives a different prediction
    gen.eval()
    a = torch.randn(1, 16)
    assert not torch.allclose(gen(a, torch.tensor([0]))[0], gen(a, torch.tensor([1]))[0])
    assert isinstance(gen.mu_mlp[1], nn.BatchNorm1d) and isinstance(gen.mu_mlp[2], nn.ReLU)


def test_token_selection_hand_built():
    gen = SemanticTransformationGenerator(in_channels=3, num_classes=5)
    # head classes 0, 1, 2 with prototypes along the axes; 3, 4 are tail
    gen.update_prototypes(torch.tensor([[4., 0., 0.], [0., 1., 0.], [0., 0., 2.]]),
                          torch.tensor([0, 1, 2]))
    head = torch.tensor([True, True, True, False, False])
    feats = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 0.1], [0.0, 0.1, 0.2], [0.3, 0.3, 3.0]])
    assert gen.select_head_class(feats, head).tolist() == [1, 0, 2, 2]
    # euclidean differs from cosine where norms differ: (0, .1, .2) points along z but is
    # nearest to the short prototype (0, 1, 0)
    assert gen.select_head_class(feats, head, 'euclidean').tolist() == [1, 0, 1, 2]
    with pytest.raises(RuntimeError, match='no prototype'):
        gen.select_head_class(feats, torch.tensor([True, True, True, True, False]))


def test_stg_augment_formula_and_mask_statistics():
    g = torch.Generator().manual_seed(3)
    a, mu = torch.randn(4000, 8, generator=g), torch.randn(4000, 8, generator=g)
    sigma = torch.rand(4000, 8, generator=g) + 0.1
    strength = torch.rand(4000, generator=g)
    out = stg_augment(a, mu, sigma, strength, lam=1.5, threshold=0.5,
                      generator=torch.Generator().manual_seed(7))
    g2 = torch.Generator().manual_seed(7)
    eps, m = torch.randn(a.shape, generator=g2), torch.rand(a.shape, generator=g2)
    a_aug = a + (sigma.sqrt() * eps + mu) * 1.5 * strength[:, None]
    torch.testing.assert_close(out, torch.where(m < 0.5, a_aug, a))
    changed = (out != a).float().mean().item()
    assert abs(changed - 0.5) < 0.01  # Eq. 4 with t = 0.5 keeps half of the dimensions
    out_t = stg_augment(a, mu, sigma, strength, threshold=0.2,
                        generator=torch.Generator().manual_seed(7))
    assert abs((out_t != a).float().mean().item() - 0.2) < 0.01
    torch.testing.assert_close(stg_augment(a, mu, sigma, strength, threshold=0.0), a)
    full = stg_augment(a, mu, torch.zeros_like(sigma), strength, lam=2.0, threshold=1.0)
    torch.testing.assert_close(full, a + mu * 2.0 * strength[:, None])


def test_class_strength_and_baselines():
    torch.testing.assert_close(class_strength(torch.tensor([400, 100, 25, 0])),
                               torch.tensor([0.25, 0.5, 1.0, 0.0]))
    a = torch.ones(20000, 4)
    noisy = gaussian_noise_augment(a, 0.5, torch.Generator().manual_seed(0))
    assert abs((noisy - a).std().item() - 0.5) < 0.01
    dropped = dropout_augment(a, 0.2, torch.Generator().manual_seed(0))
    assert abs((dropped == 0).float().mean().item() - 0.2) < 0.01
    assert abs(dropped.mean().item() - 1.0) < 0.02


def test_split_errors():
    with pytest.raises(ValueError, match='no head class'):
        head_tail_split(torch.tensor(COUNTS), 1000)
    with pytest.raises(ValueError, match='no tail class'):
        head_tail_split(torch.tensor(COUNTS), 10)
    with pytest.raises(RuntimeError, match='missing class counts'):
        head_tail_split(torch.zeros(6, dtype=torch.long), 100)
    with pytest.raises(ValueError, match='head_threshold'):
        STGGeneratorHead(6, 4, class_counts=COUNTS, head_threshold=600)
    with pytest.raises(ValueError, match='no tail class'):
        STGClsHead(6, 4, class_counts=COUNTS, head_threshold=5)


def _stage2_head(**kw):
    torch.manual_seed(0)
    cfg = dict(num_classes=6, in_channels=4, class_counts=COUNTS, dictionary_size=8,
               smooth_momentum=0.0)
    cfg.update(kw)
    head = STGGeneratorHead(**cfg)
    head.init_weights()
    return head


def test_stage2_loss_matches_manual_and_trains_generator_only():
    head = _stage2_head()
    g = torch.Generator().manual_seed(1)
    bank_f = torch.randn(5, 4, generator=g)
    head.dictionary.enqueue(bank_f, torch.tensor([0, 1, 3, 3, 0]))
    feats = torch.randn(10, 4, generator=g)
    labels = torch.tensor([0, 0, 1, 2, 3, 4, 5, 5, 1, 0])  # 4, 5 tail; 2 lone head sample
    losses = head.loss((feats, ), _samples(labels))
    # manual reference on the head samples
    head_s = labels < 4
    gm, gs, k = transformation_statistics(feats[head_s], labels[head_s], bank_f,
                                          torch.tensor([0, 1, 3, 3, 0]))
    valid = k >= 2
    head.generator.train()
    torch.manual_seed(0)
    ref = _stage2_head()
    pm, ps = ref.generator(feats[head_s], labels[head_s])
    lm, ls = regression_loss(pm, ps, gm, gs)
    torch.testing.assert_close(losses['loss_mu'], lm[valid].mean())
    torch.testing.assert_close(losses['loss_sigma'], ls[valid].mean())
    assert losses['stg_valid'].item() == pytest.approx(valid.sum().item() / 10)
    (losses['loss_mu'] + losses['loss_sigma']).backward()
    assert head.fc.weight.grad is None and not head.fc.weight.requires_grad
    assert head.generator.tokens.grad[:4].abs().sum() > 0  # head tokens learn
    assert head.generator.tokens.grad[4:].abs().sum() == 0  # tail tokens untouched
    # bookkeeping: head features enter the dictionary, prototypes, iteration count
    bank, bank_labels = head.dictionary.get()
    assert (bank_labels < 4).all() and bank.shape[0] == 8  # 5 + 7 head samples, 8 slots
    assert head.generator.trained_iters.item() == 1
    assert head.generator.proto_count.tolist() == [3, 2, 1, 1, 0, 0]  # batch heads only


def test_stage2_smoothing_uses_sample_idx():
    head = _stage2_head(smooth_momentum=0.5, dictionary_size=0)
    feats = torch.tensor([[0., 0., 0., 0.], [2., 2., 2., 2.], [4., 4., 4., 4.]])
    labels = torch.tensor([0, 0, 0])
    head.loss((feats, ), _samples(labels, idx=[10, 11, 12]))
    assert head.smoother.seen[10:13].all()
    first = head.smoother.mu[10].clone()  # (2+4)/2 - 0 = 3
    torch.testing.assert_close(first, torch.full((4, ), 3.0))
    head.loss((feats + 1.0, ), _samples(labels, idx=[10, 11, 12]))  # same mu again
    torch.testing.assert_close(head.smoother.mu[10], torch.full((4, ), 3.0))
    head.loss((feats[[2, 1, 0]], ), _samples(labels, idx=[10, 11, 12]))  # now mu_10 = -3
    torch.testing.assert_close(head.smoother.mu[10], torch.full((4, ), 0.0))


def _trained_generator_state(in_channels=4, num_classes=6):
    head = _stage2_head()
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 5])
        head.loss((torch.randn(10, 4, generator=g) + labels[:, None].float(), ),
                  _samples(labels))
    return head


def test_stage3_augments_tail_only_with_selected_tokens():
    s2 = _trained_generator_state()
    head = STGClsHead(6, 4, class_counts=COUNTS)
    head.load_state_dict(s2.state_dict(), strict=False)
    head.train()
    assert not head.generator.training
    feats = torch.randn(8, 4) + 2
    labels = torch.tensor([0, 1, 2, 3, 4, 4, 5, 5])
    out = head.augment_features(feats, labels, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:4], feats[:4])  # head samples unchanged
    # reference: the same tokens (most similar head prototype) and draws
    tail = feats[4:]
    token = s2.generator.select_head_class(tail, torch.tensor([True] * 4 + [False] * 2))
    s2.generator.eval()
    mu, sigma = s2.generator(tail, token)
    strength = torch.sqrt(torch.tensor([20. / 50, 20. / 50, 1., 1.]))
    ref = stg_augment(tail, mu, sigma, strength, 1.5, 0.5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[4:], ref)
    assert not torch.equal(out[4:], tail)


def test_stage3_without_generator_is_plain_crt():
    """augment='none' trains exactly like a re-initialised LinearClsHead (cRT)."""
    torch.manual_seed(0)
    ref = LinearClsHead(6, 4)
    ref.init_weights()
    stg = STGClsHead(6, 4, class_counts=COUNTS, augment='none')
    noisy = STGClsHead(6, 4, class_counts=COUNTS, augment='gaussian')  # a switched-on control
    heads = [ref, stg, noisy]
    for h in heads[1:]:
        h.fc.load_state_dict(ref.fc.state_dict())
    opts = [torch.optim.Adam([p for p in h.parameters() if p.requires_grad], lr=1e-2)
            for h in heads]
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        feats = torch.randn(16, 4, generator=g)
        samples = _samples(torch.randint(0, 6, (16, ), generator=g))
        for head, opt in zip(heads, opts):
            opt.zero_grad()
            head.loss((feats, ), samples)['loss'].backward()
            opt.step()
    torch.testing.assert_close(stg.fc.weight, ref.fc.weight, rtol=0, atol=0)
    torch.testing.assert_close(stg.fc.bias, ref.fc.bias, rtol=0, atol=0)
    assert not torch.allclose(noisy.fc.weight, ref.fc.weight)


def test_stage3_untrained_generator_error():
    head = STGClsHead(6, 4, class_counts=COUNTS)
    with pytest.raises(RuntimeError, match='stage-2 checkpoint'):
        head.loss((torch.randn(4, 4), ), _samples([0, 4, 5, 1]))


def test_checkpoint_chain_crt_lws_and_resume():
    s2 = _trained_generator_state()
    sd2 = {f'head.{k}': v for k, v in s2.state_dict().items()}

    def load(head, sd):
        wrapper = nn.Module()
        wrapper.head = head
        return wrapper.load_state_dict(sd, strict=False)

    crt = STGClsHead(6, 4, class_counts=COUNTS, classifier='crt')
    crt.init_weights()
    fresh = crt.fc.weight.clone()
    res = load(crt, sd2)
    torch.testing.assert_close(crt.fc.weight, fresh)  # cRT: re-initialised classifier
    torch.testing.assert_close(crt.generator.tokens, s2.generator.tokens)
    assert crt.generator.trained_iters.item() == 3 and crt.stg_stage.item() == 3
    assert not any('fc.' in k or 'stg_stage' in k for k in res.missing_keys)
    assert not any('smoother' in k or 'dictionary' in k for k in res.unexpected_keys)
    lws = STGClsHead(6, 4, class_counts=COUNTS, classifier='lws')
    load(lws, sd2)
    torch.testing.assert_close(lws.fc.weight, s2.fc.weight)  # LWS keeps stage-1 fc
    assert not lws.fc.weight.requires_grad and lws.lws_scale.requires_grad
    # resuming a stage-3 checkpoint keeps the trained classifier
    with torch.no_grad():
        crt.fc.weight.add_(1.0)
    sd3 = {f'head.{k}': v for k, v in crt.state_dict().items()}
    again = STGClsHead(6, 4, class_counts=COUNTS)
    load(again, sd3)
    torch.testing.assert_close(again.fc.weight, crt.fc.weight)


def test_diagonal_gaussian_kl_matches_torch_distributions():
    from torch.distributions import Normal, kl_divergence
    g = torch.Generator().manual_seed(0)
    mu, sigma = torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g) + 0.2
    from lt_plugins.models.stg import diagonal_gaussian_kl
    kl = diagonal_gaussian_kl(mu, sigma)
    ref = torch.stack([torch.stack([
        kl_divergence(Normal(mu[i].double(), sigma[i].double().sqrt()),
                      Normal(mu[j].double(), sigma[j].double().sqrt())).sum()
        for j in range(4)]) for i in range(4)])
    torch.testing.assert_close(kl, ref)
    assert kl.diagonal().abs().max() < 1e-12 and not torch.allclose(kl, kl.t())


def test_stage2_batches_without_enough_head_samples():
    head = _stage2_head(smooth_momentum=0.9)
    head.dictionary.enqueue(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    for labels in ([4, 5, 5], [4, 0]):  # no head sample; a single one (BN needs two)
        losses = head.loss((torch.randn(len(labels), 4), ), _samples(labels))
        assert losses['loss_mu'].item() == 0 and losses['stg_valid'].item() == 0
        losses['loss_mu'].backward()  # still connected to the generator (DDP-safe)
    mu, sigma, k = transformation_statistics(torch.zeros(0, 4), torch.zeros(0).long(),
                                             torch.randn(2, 4), torch.tensor([0, 3]))
    assert mu.shape == (0, 4) and k.numel() == 0


def test_stage3_use_mean_false_drops_mu():
    s2 = _trained_generator_state()
    head = STGClsHead(6, 4, class_counts=COUNTS, use_mean=False, mix_threshold=1.0)
    head.load_state_dict(s2.state_dict(), strict=False)
    feats, labels = torch.randn(3, 4), torch.tensor([4, 5, 5])
    out = head.augment_features(feats, labels, torch.Generator().manual_seed(0))
    token = s2.generator.select_head_class(feats, torch.tensor([True] * 4 + [False] * 2))
    s2.generator.eval()
    _, sigma = s2.generator(feats, token)
    eps = torch.randn(feats.shape, generator=torch.Generator().manual_seed(0))
    strength = torch.sqrt(torch.tensor([20. / 50, 1., 1.]))
    torch.testing.assert_close(out, feats + sigma.sqrt() * eps * 1.5 * strength[:, None])
