"""IEMHead (IEM Eq. 14-16): warm-up, memory loss vs manual reads, inference, resume."""
import io
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401
from lt_plugins.engine.hooks.iem_memory_hook import IEMMemoryHook
from lt_plugins.engine.optimizers import HybridSGDAdam
from lt_plugins.models.heads.iem_head import IEMHead
from lt_plugins.models.necks.rsa_neck import RSANeck

C, DIM = 5, 8


def _samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def _build(seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = dict(global_capacity=16, local_capacity=32, num_neighbors=3, warmup_iters=1)
    cfg.update(kwargs)
    return RSANeck(DIM), IEMHead(C, DIM, **cfg)


def _batch(seed, batch=6):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, DIM, 3, 3, generator=gen),
            torch.randint(0, C, (batch, ), generator=gen))


def test_warmup_writes_probabilities_and_has_zero_memory_loss():
    neck, head = _build(warmup_iters=1)
    x, y = _batch(0)
    feats = neck(x)
    losses = head.loss(feats, _samples(y))
    assert set(losses) == {'loss', 'loss_global_memory', 'loss_local_memory'}
    assert losses['loss_global_memory'].item() == 0 and losses['loss_local_memory'].item() == 0
    assert head.global_memory.valid.sum() == 0          # staged, applied after the step
    head.flush_memories()
    prob = head.fc(feats[3]).softmax(1).gather(1, y.view(-1, 1)).squeeze(1).detach()
    for i in range(len(y)):
        mem = head.global_memory
        slot = ((mem.keys[y[i]] - feats[0][i].detach()).pow(2).sum(1) < 1e-12) & mem.valid[y[i]]
        assert slot.sum() == 1
        torch.testing.assert_close(mem.values[y[i]][slot], prob[i:i + 1])
    per_class = torch.bincount(y, minlength=C) * feats[1].size(1)      # 25 regions per image
    assert head.local_memory.num_valid().tolist() == per_class.clamp_max(32).tolist()


def _hard_negative_loop(logits, y):
    out = []
    for row, label in zip(logits.tolist(), y.tolist()):
        ranked = sorted(range(len(row)), key=lambda c: -row[c])
        out.append(next(c for c in ranked if c != label))
    return torch.tensor(out)


@pytest.mark.parametrize('reduce,local_regions', [('mean', None), ('max', None), ('mean', 4)])
def test_memory_loss_equals_manual_reads_with_hard_negatives(reduce, local_regions):
    neck, head = _build(warmup_iters=1, region_reduce=reduce, local_regions=local_regions)
    x0, y0 = _batch(0, batch=12)
    head.loss(neck(x0), _samples(y0))          # warm-up step fills the memories
    head.flush_memories()
    x, y = _batch(1)
    feats = neck(x)
    logits = head.fc(feats[3]).detach()
    ybar = _hard_negative_loop(logits, y)
    head.eval()                                # reference reads must not mark ages
    ref = {}
    regions = feats[1]
    if local_regions:                          # the most attended regions, by a full sort
        order = torch.argsort(feats[2], dim=1, descending=True)[:, :local_regions]
        regions = torch.stack([regions[b, order[b]] for b in range(len(y))])
        assert head.local_memory.num_valid().sum() == 12 * local_regions
    for name, query in (('global_memory', feats[0].unsqueeze(1)), ('local_memory', regions)):
        mem = getattr(head, name)
        pos = mem.read(query.detach(), y)
        neg = mem.read(query.detach(), ybar)
        pos, neg = (pos.mean(1), neg.mean(1)) if reduce == 'mean' else (pos.amax(1), neg.amax(1))
        ref[name] = F.mse_loss(pos, torch.ones_like(pos)) + F.mse_loss(neg, torch.zeros_like(neg))
    head.train()
    losses = head.loss(feats, _samples(y))
    for name in ref:
        torch.testing.assert_close(losses[f'loss_{name}'], ref[name])
    torch.testing.assert_close(losses['loss'], F.cross_entropy(head.fc(feats[3]), y))


def test_memory_loss_reaches_backbone_only_when_asked():
    for to_backbone in (False, True):
        neck, head = _build(warmup_iters=0, memory_loss_to_backbone=to_backbone)
        x, y = _batch(0)
        head.loss(neck(x), _samples(y))
        head.flush_memories()
        losses = head.loss(neck(x), _samples(y))
        neck.zero_grad()
        (losses['loss_global_memory'] + losses['loss_local_memory']).backward()
        grad = sum(p.grad.abs().sum() for p in neck.parameters() if p.grad is not None)
        assert (float(grad) > 0) == to_backbone
        assert head.global_memory.keys.grad.abs().sum() > 0
        assert head.local_memory.values.grad.abs().sum() > 0


def test_predict_averages_classifier_and_memories_and_leaves_state():
    neck, head = _build(warmup_iters=0)
    for seed in range(3):
        x, y = _batch(seed)
        head.loss(neck(x), _samples(y))
        head.flush_memories()
    head.eval()
    before = {k: v.clone() for k, v in head.state_dict().items()}
    x, _ = _batch(9)
    with torch.no_grad():
        feats = neck(x)
        preds = head.predict(feats)
        scores = torch.stack([p.pred_score for p in preds])
        glob = torch.stack([head.global_memory.read(feats[0], torch.full((6, ), c))
                            for c in range(C)], 1)
        loc = torch.stack([head.local_memory.read(feats[1], torch.full((6, ), c)).mean(1)
                           for c in range(C)], 1)
        ref = 0.5 * head.fc(feats[3]).softmax(1) + 0.25 * glob + 0.25 * loc
    torch.testing.assert_close(scores, ref)
    # the labels are the argmax of the head's own scores (``ref`` agrees with them only to
    # round-off, which could decide a near-tie between two classes)
    assert [int(p.pred_label) for p in preds] == scores.argmax(1).tolist()
    head.normalize_memory_scores = True
    with torch.no_grad():
        normed = torch.stack([p.pred_score for p in head.predict(feats)])
        cls = head.fc(feats[3]).softmax(1)
    torch.testing.assert_close(normed, 0.5 * cls + 0.25 * glob / glob.sum(1, keepdim=True)
                               + 0.25 * loc / loc.sum(1, keepdim=True))
    torch.testing.assert_close(normed.sum(1), torch.ones(6))
    head.normalize_memory_scores = False
    head.inference_read = 'all'           # each memory normalised over all classes' slots
    with torch.no_grad():
        knn = torch.stack([p.pred_score for p in head.predict(feats)])
        glob_all = head.global_memory.read_all(feats[0], 'all')
        loc_all = head.local_memory.read_all(feats[1], 'all').mean(1)
    torch.testing.assert_close(knn, 0.5 * cls + 0.25 * glob_all + 0.25 * loc_all)
    # same numerators as Eq. 1, one denominator per query: ratios between classes follow
    # the per-class similarity mass, which the paper's read discards
    assert not torch.allclose(knn, ref)
    head.inference_read = 'keys'          # soft kNN over the keys: every memory sums to 1
    with torch.no_grad():
        keys_scores = torch.stack([p.pred_score for p in head.predict(feats)])
        glob_keys = head.global_memory.read_all(feats[0], 'keys')
    torch.testing.assert_close(keys_scores.sum(1), torch.ones(6))
    torch.testing.assert_close(
        keys_scores, 0.5 * cls + 0.25 * glob_keys
        + 0.25 * head.local_memory.read_all(feats[1], 'keys').mean(1))
    for key, value in head.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not head.flush_memories()


def test_ablation_switches():
    _, head = _build(use_local_memory=False, warmup_iters=0)
    pooled = (torch.randn(4, DIM), )                      # e.g. GlobalAveragePooling neck
    losses = head.loss(pooled, _samples([0, 1, 2, 3]))
    assert set(losses) == {'loss', 'loss_global_memory'}
    head.flush_memories()
    head.eval()
    assert len(head.predict(pooled)) == 4
    neck, head = _build(use_global_memory=False)
    assert set(head.loss(neck(_batch(0)[0]), _samples(_batch(0)[1]))) == {'loss',
                                                                          'loss_local_memory'}
    neck = RSANeck(DIM, attention=False)                  # "w/o RSA"
    _, head = _build()
    assert set(head.loss(neck(_batch(0)[0]), _samples(_batch(0)[1]))) == {
        'loss', 'loss_global_memory', 'loss_local_memory'}


def test_clear_errors():
    neck = RSANeck(DIM, out_channels=6)
    _, head = _build()
    with pytest.raises(ValueError, match='in_channels=8'):
        head.loss(neck(_batch(0)[0]), _samples(_batch(0)[1]))
    with pytest.raises(ValueError, match='RSANeck'):
        head.loss((torch.randn(6, DIM), ), _samples(_batch(0)[1]))
    with pytest.raises(ValueError, match='global_channels'):
        IEMHead(C, 6, global_channels=4).loss(neck(_batch(0)[0]), _samples(_batch(0)[1]))
    with pytest.raises(ValueError, match='capacity=0'):
        IEMHead(C, DIM, local_capacity=0)
    with pytest.raises(ValueError, match='num_neighbors=50'):
        IEMHead(C, DIM, global_capacity=10)
    with pytest.raises(ValueError, match='warmup_value'):
        IEMHead(C, DIM, warmup_value='softmax')
    with pytest.raises(ValueError, match='inference_read'):
        IEMHead(C, DIM, inference_read='knn')


# ----------------------------------------------------------------- resume
def _optimizer(model):
    mem = [p for n, p in model.named_parameters() if '_memory.' in n]
    rest = [p for n, p in model.named_parameters() if '_memory.' not in n]
    return HybridSGDAdam([dict(params=rest), dict(params=mem, adam=True, lr=1e-2)],
                         lr=0.05, momentum=0.9, weight_decay=1e-4)


def _train(model, optimizer, seeds):
    runner = SimpleNamespace(model=model, optim_wrapper=OptimWrapper(optimizer))
    hook = IEMMemoryHook()
    for seed in seeds:
        x, y = _batch(seed)
        losses = model['head'].loss(model['neck'](x), _samples(y))
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        hook.after_train_iter(runner, 0)


def test_checkpoint_resume_reproduces_uninterrupted_run():
    def fresh(seed):
        neck, head = _build(seed, warmup_iters=2, local_capacity=8, global_capacity=4)
        model = nn.ModuleDict(dict(neck=neck, head=head))
        return model, _optimizer(model)

    full, full_opt = fresh(0)
    _train(full, full_opt, range(6))

    part, part_opt = fresh(0)
    _train(part, part_opt, range(3))
    buffer = io.BytesIO()
    torch.save(dict(model=part.state_dict(), optim=part_opt.state_dict()), buffer)
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=False)
    resumed, resumed_opt = fresh(123)
    resumed.load_state_dict(ckpt['model'])
    resumed_opt.load_state_dict(ckpt['optim'])
    _train(resumed, resumed_opt, range(3, 6))

    assert full['head'].global_memory.valid.all()      # evictions happened
    for (key, want), (_, got) in zip(full.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=key)


def test_end_to_end_image_classifier_train_and_predict():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='TIMMBackbone', model_name='resnet32_cifar'),
        neck=dict(type='RSANeck', in_channels=64),
        head=dict(type='IEMHead', num_classes=10, in_channels=64, warmup_iters=1,
                  global_capacity=8, local_capacity=512, num_neighbors=4),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10)))
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance('test_iem_end_to_end', scope_name='mmpretrain')
    optim_wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='HybridSGDAdam', lr=0.1, momentum=0.9, weight_decay=5e-4),
        paramwise_cfg=dict(custom_keys={
            'head.global_memory': dict(adam=True, lr_mult=1e-4, decay_mult=0.0),
            'head.local_memory': dict(adam=True, lr_mult=1e-4, decay_mult=0.0)})))
    adam_groups = [g for g in optim_wrapper.optimizer.param_groups if g.get('adam')]
    assert len(adam_groups) == 4 and all(g['lr'] == pytest.approx(1e-5) for g in adam_groups)
    data = dict(inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
                        for _ in range(4)],
                data_samples=_samples([0, 1, 2, 3]))
    model.train()
    for _ in range(2):
        log_vars = model.train_step(data, optim_wrapper)
        model.head.flush_memories()
    assert 'loss_local_memory' in log_vars
    assert model.head.local_memory.valid.sum() == 2 * 4 * 225   # 8x8 map -> 225 regions
    model.eval()
    preds = model.val_step(data)
    assert len(preds) == 4 and preds[0].pred_score.shape == (10, )


def _open_head(kind):
    head = IEMHead(2, 2, use_local_memory=False, global_capacity=2, num_neighbors=2,
                   delta=1.0, open_confidence=kind).eval()
    mem = head.global_memory
    with torch.no_grad():
        mem.keys.copy_(torch.tensor([[[0., 0.], [1., 0.]], [[0., 3.], [50., 50.]]]))
        mem.values.fill_(0.5)
    mem.valid.copy_(torch.tensor([[True, True], [True, False]]))
    return head


def test_open_confidence_hand_computed():
    """Memory confidences on a hand-built memory (delta 1, n 2): query (0, 0) lies at squared
    distances 0, 1 (class 0) and 9 (class 1); query (0, 10) at 100, 101 and 49."""
    feats = torch.tensor([[0., 0.], [0., 10.]])
    mass = torch.stack([p.open_confidence for p in _open_head('memory_mass').predict(feats)])
    # mean of 1 / (d + 1) over the 2 nearest keys of any class
    torch.testing.assert_close(mass, torch.tensor([(1 + 1 / 2) / 2, (1 / 50 + 1 / 101) / 2]))
    knn = torch.stack([p.open_confidence for p in _open_head('memory_knn').predict(feats)])
    # top class's share of the similarity mass of every class's 2 nearest keys
    torch.testing.assert_close(knn, torch.tensor([1.5 / 1.6, (1 / 50) / (1 / 50 + 1 / 101
                                                                      + 1 / 102)]))
    head = _open_head('score')
    preds = head.predict(feats)
    torch.testing.assert_close(torch.stack([p.open_confidence for p in preds]),
                               torch.stack([p.pred_score.max() for p in preds]))
    assert 'open_confidence' not in _open_head(None).predict(feats)[0]
    with pytest.raises(ValueError, match='open_confidence'):
        IEMHead(2, 2, open_confidence='entropy')
    with pytest.raises(ValueError, match='use_global_memory'):
        IEMHead(2, 2, use_global_memory=False, use_local_memory=False,
                open_confidence='memory_mass')
