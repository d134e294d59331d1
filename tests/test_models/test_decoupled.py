"""Decoupled second stage: frozen representation, stage-1 loading, LWS and tau-norm heads."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401
from lt_plugins.models.heads.decoupled_heads import LWSHead, TauNormHead

NUM_CLASSES = 5


def _cfg(type_='DecoupledClassifier', head=None, **kwargs):
    cfg = dict(type=type_,
               backbone=dict(type='TIMMBackbone', model_name='resnet20_cifar'),
               neck=dict(type='GlobalAveragePooling'),
               head=head or dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                                 in_channels=64, loss=dict(type='CrossEntropyLoss')),
               **kwargs)
    return cfg


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 3, 16, 16, generator=g)
    labels = torch.randint(0, NUM_CLASSES, (n, ), generator=g)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return inputs, samples


def _perturb_bn_stats(model):
    """Non-trivial running statistics, so that using them or not makes a difference."""
    g = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def test_frozen_parts_no_grad_and_eval_mode():
    torch.manual_seed(0)
    model = MODELS.build(_cfg())
    model.train()
    assert model.training and model.head.training
    assert not model.backbone.training and not model.neck.training
    assert all(not m.training for m in model.backbone.modules())
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())

    inputs, samples = _batch()
    losses = model(inputs, samples, mode='loss')
    losses['loss'].backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    # the features are computed without an autograd graph
    assert not model.extract_feat(inputs)[-1].requires_grad
    # train(False) then train() again keeps the frozen parts in eval mode
    model.eval()
    model.train()
    assert not model.backbone.training and model.head.training


def test_bn_statistics_unchanged_by_training_forward():
    torch.manual_seed(0)
    model = MODELS.build(_cfg())
    _perturb_bn_stats(model)
    before = copy.deepcopy(model.backbone.state_dict())
    inputs, samples = _batch()
    model.train()
    train_feats = model.extract_feat(inputs)[-1]
    model(inputs, samples, mode='loss')['loss'].backward()
    after = model.backbone.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    model.eval()
    torch.testing.assert_close(train_feats, model.extract_feat(inputs)[-1])


def test_unknown_frozen_part():
    with pytest.raises(ValueError, match='frozen'):
        MODELS.build(_cfg(frozen=('backbone', 'classifier')))


def _stage1_state():
    torch.manual_seed(1)
    stage1 = MODELS.build(_cfg('ImageClassifier'))
    with torch.no_grad():
        stage1.head.fc.weight.normal_()
        stage1.head.fc.bias.normal_()
    _perturb_bn_stats(stage1)
    return stage1.state_dict()


def _assert_tensors_equal(module, state, prefix):
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[prefix + key]), prefix + key


def test_stage1_state_dict_skips_head():
    stage1 = _stage1_state()
    torch.manual_seed(2)
    model = MODELS.build(_cfg(reinit_head=True))
    head_init = copy.deepcopy(model.head.state_dict())
    result = model.load_state_dict(stage1, strict=False)
    assert set(result.missing_keys) == {'head.fc.weight', 'head.fc.bias'}
    assert not result.unexpected_keys
    _assert_tensors_equal(model.backbone, stage1, 'backbone.')
    for key, value in head_init.items():
        assert torch.equal(model.head.state_dict()[key], value)
    assert not torch.equal(model.head.fc.weight, stage1['head.fc.weight'])
    assert 'head.fc.weight' in stage1  # the caller's dict is what the hook edits: a copy


def test_stage1_checkpoint_file_skips_head(tmp_path):
    """The path of ``load_from`` (mmengine's load_checkpoint, non-strict)."""
    stage1 = _stage1_state()
    path = tmp_path / 'stage1.pth'
    torch.save(dict(state_dict=stage1, meta=dict(epoch=30)), path)
    torch.manual_seed(2)
    model = MODELS.build(_cfg(reinit_head=True))
    head_init = copy.deepcopy(model.head.state_dict())
    load_checkpoint(model, str(path), map_location='cpu')
    _assert_tensors_equal(model.backbone, stage1, 'backbone.')
    for key, value in head_init.items():
        assert torch.equal(model.head.state_dict()[key], value)


def test_decoupled_state_dict_loads_whole():
    torch.manual_seed(3)
    trained = MODELS.build(_cfg(reinit_head=True))
    with torch.no_grad():
        trained.head.fc.weight.normal_()
    _perturb_bn_stats(trained)
    state = trained.state_dict()
    assert 'decoupled_stage' in state
    torch.manual_seed(4)
    resumed = MODELS.build(_cfg(reinit_head=True))
    resumed.load_state_dict(state, strict=True)
    _assert_tensors_equal(resumed, state, '')


def test_reinit_head_false_keeps_stage1_head():
    stage1 = _stage1_state()
    torch.manual_seed(2)
    model = MODELS.build(_cfg(reinit_head=False))
    result = model.load_state_dict(stage1, strict=False)
    assert not result.unexpected_keys
    assert set(result.missing_keys) <= {'decoupled_stage'}
    _assert_tensors_equal(model.backbone, stage1, 'backbone.')
    _assert_tensors_equal(model.head, stage1, 'head.')


def test_reinit_head_false_strict_load_of_stage1():
    stage1 = _stage1_state()
    model = MODELS.build(_cfg(reinit_head=False))
    model.load_state_dict(stage1, strict=True)


# -- heads -------------------------------------------------------------------------------------
def test_lws_head_scales_linear_logits():
    torch.manual_seed(0)
    head = LWSHead(num_classes=NUM_CLASSES, in_channels=8)
    with torch.no_grad():
        head.fc.weight.normal_()
        head.fc.bias.normal_()
        head.scales.copy_(torch.rand(NUM_CLASSES) + 0.5)
    assert [n for n, p in head.named_parameters() if p.requires_grad] == ['scales']
    x = torch.randn(4, 8)
    logits = head((x, ))
    ref = head.scales.detach() * (x @ head.fc.weight.T + head.fc.bias)
    torch.testing.assert_close(logits, ref)
    # gradient of the scales: d/ds_c sum(logits) = sum_i (w_c . x_i + b_c)
    logits.sum().backward()
    torch.testing.assert_close(head.scales.grad, (x @ head.fc.weight.T + head.fc.bias).sum(0))
    assert head.fc.weight.grad is None
    assert torch.equal(LWSHead(num_classes=3, in_channels=2).scales, torch.ones(3))


def test_lws_in_decoupled_classifier_trains_only_scales():
    stage1 = _stage1_state()
    model = MODELS.build(_cfg(reinit_head=False, head=dict(
        type='LWSHead', num_classes=NUM_CLASSES, in_channels=64,
        loss=dict(type='CrossEntropyLoss'))))
    model.load_state_dict(stage1, strict=False)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ['head.scales']
    torch.testing.assert_close(model.head.fc.weight, stage1['head.fc.weight'])
    inputs, samples = _batch()
    model.train()
    model(inputs, samples, mode='loss')['loss'].backward()
    assert model.head.scales.grad is not None and model.head.scales.grad.abs().sum() > 0


@pytest.mark.parametrize('tau', [0.0, 0.5, 1.0, 2.0])
def test_tau_norm_head(tau):
    torch.manual_seed(0)
    head = TauNormHead(num_classes=NUM_CLASSES, in_channels=8, tau=tau)
    with torch.no_grad():
        head.fc.weight.copy_(torch.randn(NUM_CLASSES, 8) * torch.arange(1., 6.)[:, None])
        head.fc.bias.normal_()
    x = torch.randn(4, 8)
    weight = head.fc.weight.detach()
    ref = x @ (weight / weight.norm(dim=1, keepdim=True) ** tau).T
    torch.testing.assert_close(head((x, )), ref)
    if tau == 0:  # the plain classifier without its bias
        torch.testing.assert_close(head((x, )), F.linear(x, weight))
    if tau == 1:  # cosine similarity times ||x||
        cos = F.normalize(x, dim=1) @ F.normalize(weight, dim=1).T
        torch.testing.assert_close(head((x, )), cos * x.norm(dim=1, keepdim=True))


def test_tau_norm_negative_tau():
    with pytest.raises(ValueError, match='tau'):
        TauNormHead(num_classes=3, in_channels=2, tau=-0.5)
