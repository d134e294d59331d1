"""LabelAwareClassifier + AFANeck + AFAClsHead end to end, AFA head losses, DDP (gloo)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401
from lt_plugins.models.necks.afa_neck import generation_counts
from tests.dist_utils import run_distributed

LABELS = [0] * 6 + [1] * 3 + [2, 3, 4]


def _samples(labels):
    return [DataSample().set_gt_label(int(label)) for label in labels]


def _afa_cfg(**neck):
    neck_cfg = dict(type='AFANeck', in_channels=32, feat_size=(16, 16))
    neck_cfg.update(neck)
    return dict(type='LabelAwareClassifier',
                backbone=dict(type='TimmSplitBackbone', model_name='resnet32_cifar'),
                neck=neck_cfg,
                head=dict(type='AFAClsHead', num_classes=10, in_channels=64, cal_acc=True))


def _build(cfg, seed=0):
    torch.manual_seed(seed)
    return MODELS.build(copy.deepcopy(cfg))


def test_training_step_generates_through_last_stage():
    model = _build(_afa_cfg())
    model.train()
    x = torch.randn(len(LABELS), 3, 32, 32)
    seen = []
    handle = model.backbone.tail.register_forward_hook(
        lambda mod, inp, out: seen.append(inp[0].shape[0]))
    losses = model(x, _samples(LABELS), mode='loss')
    handle.remove()
    _, _, num_gen = generation_counts(torch.tensor(LABELS), 4.0, 1.0)
    assert seen == [len(LABELS) + int(num_gen.sum())]  # real + generated through layer3
    assert losses['afa_num_gen'].item() == int(num_gen.sum())
    assert set(losses) >= {'loss_ori', 'loss_all', 'lbls_weight', 'afa_class_ratio'}
    loss, log_vars = model.parse_losses(losses)
    torch.testing.assert_close(loss, losses['loss_ori'] + losses['loss_all'])
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_inference_has_input_batch_size():
    model = _build(_afa_cfg())
    model.eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        preds = model(x, _samples([0, 1, 2, 3, 4]), mode='predict')
        logits = model(x)
    assert len(preds) == 5 and logits.shape == (5, 10)
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]),
                               logits.softmax(1))


def test_afa_head_losses_match_reference():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='AFAClsHead', num_classes=5, in_channels=6,
                             all_loss_weight=2.0))
    feats = torch.randn(7, 6)
    real = torch.tensor([0, 0, 1, 4])
    gen = torch.tensor([1, 4, 4])
    losses = head.loss((feats, ), _samples(real.tolist()), gen_labels=gen)
    logits = head.fc(feats)
    torch.testing.assert_close(losses['loss_ori'], F.cross_entropy(logits[:4], real))
    torch.testing.assert_close(losses['loss_all'],
                               2.0 * F.cross_entropy(logits, torch.cat([real, gen])))
    head.set_lbls_weight(0.0)
    losses = head.loss((feats[:4], ), _samples(real.tolist()))
    assert losses['loss_all'].item() == 0 and losses['lbls_weight'].item() == 0
    with pytest.raises(ValueError, match='generated labels'):
        head.loss((feats, ), _samples(real.tolist()), gen_labels=gen[:1])
    soft = [DataSample().set_gt_label(0).set_gt_score(torch.ones(5) / 5)]
    with pytest.raises(ValueError, match='hard labels'):
        head.loss((feats[:1], ), soft)


def test_plain_neck_behaves_like_image_classifier():
    base = dict(backbone=dict(type='TimmSplitBackbone', model_name='resnet32_cifar'),
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='LinearClsHead', num_classes=10, in_channels=64))
    ours = _build(dict(type='LabelAwareClassifier', **base))
    ref = _build(dict(type='ImageClassifier', **base))
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, 3, 32, 32)
    ds = _samples([0, 1, 1, 2])
    torch.testing.assert_close(ours(x, copy.deepcopy(ds), mode='loss'),
                               ref(x, copy.deepcopy(ds), mode='loss'))
    torch.testing.assert_close(ours(x), ref(x))


def test_after_last_stage_with_any_backbone():
    cfg = dict(type='LabelAwareClassifier',
               backbone=dict(type='TIMMBackbone', model_name='resnet32_cifar',
                             features_only=True, out_indices=(-1, )),
               neck=dict(type='AFANeck', in_channels=64, qkv='conv1x1',
                         placement='after_last_stage'),
               head=dict(type='AFAClsHead', num_classes=10, in_channels=64))
    model = _build(cfg)
    model.train()
    losses = model(torch.randn(6, 3, 32, 32), _samples([0, 0, 0, 0, 1, 2]), mode='loss')
    assert losses['afa_num_gen'].item() > 0
    model.eval()
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def test_split_neck_needs_split_backbone():
    cfg = _afa_cfg()
    cfg['backbone'] = dict(type='TIMMBackbone', model_name='resnet32_cifar',
                           features_only=True, out_indices=(-1, ))
    with pytest.raises(ValueError, match='TimmSplitBackbone'):
        MODELS.build(cfg)


def _ddp_worker(rank, world_size):
    import lt_plugins  # noqa: F401  (spawned process)
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper
    model = _build(_afa_cfg(), seed=0)
    model.train()
    ddp = MMDistributedDataParallel(module=model)
    optim = OptimWrapper(torch.optim.SGD(ddp.parameters(), lr=0.1))
    data = _ddp_batch(rank)
    torch.manual_seed(100 + rank)
    log_vars = ddp.train_step(data, optim)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    return dict(params=params, num_gen=log_vars['afa_num_gen'].item(),
                loss=log_vars['loss'].item())


def _ddp_batch(rank):
    labels = LABELS if rank == 0 else [7, 7, 7, 2, 2, 5, 5, 5, 5, 5, 1, 3]
    gen = torch.Generator().manual_seed(rank)
    inputs = [torch.rand(3, 32, 32, generator=gen) * 255 for _ in labels]
    return dict(inputs=inputs, data_samples=_samples(labels))


def test_ddp_two_processes_match_averaged_gradients(monkeypatch):
    """Each rank generates from its own batch; the update equals the rank-averaged gradient."""
    results = run_distributed(_ddp_worker)
    model = _build(_afa_cfg(), seed=0)
    model.train()
    expected_gen, losses = [], []
    for rank in range(2):
        data = model.data_preprocessor(_ddp_batch(rank), training=True)
        labels = torch.cat([ds.gt_label for ds in data['data_samples']])
        expected_gen.append(int(generation_counts(labels, 4.0, 1.0)[2].sum()))
        # rank r's pairs: the generator keyed by (pair_seed, step 0, r)
        monkeypatch.setattr('mmengine.dist.get_rank', lambda group=None, r=rank: r)
        model.neck.pair_step.zero_()
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        (loss / 2).backward()
        losses.append(loss.item())
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    assert [r['num_gen'] for r in results] == expected_gen
    assert [r['loss'] for r in results] == pytest.approx(losses, rel=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(results[0]['params'][name], results[1]['params'][name])
        torch.testing.assert_close(results[0]['params'][name], p.detach())
