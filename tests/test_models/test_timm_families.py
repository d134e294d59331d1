"""Every method on every timm family a user is likely to try: the shipped CPU config with only
``model.backbone.model_name`` changed builds and takes one optimiser step.

Tiny random-init models (the cheapest name per family) on a batch of 4 random 32x32 images.
Vision transformers return token sequences; they run with ``features_only=True`` (NCHW maps
of their last blocks) and, for AFA, with the neck after the last stage (a token model has no
map between two stages to split at, see ``TimmSplitBackbone``).
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# CIFAR-10-LT IR100 training counts (what ClassCountsHook would publish)
COUNTS = torch.tensor([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])

# family -> (timm name, extra backbone arguments)
FAMILIES = {
    'resnet': ('resnet10t', {}),
    'resnetd': ('resnet18d', {}),
    'efficientnet': ('efficientnet_b0', {}),
    'mobilenetv3': ('mobilenetv3_small_050', {}),
    'regnet': ('regnety_002', {}),
    'densenet': ('densenet121', {}),
    'convnext': ('convnext_atto', {}),
    'vit': ('vit_tiny_patch16_224', {'img_size': 32, 'features_only': True}),
}
CONFIGS = {
    'ce': 'baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
    'mbj': 'mbj/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
    'iem': 'iem/iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
    'stg': 'stg/stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
    'stg3': 'stg/stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
    'afa': 'afa/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
    'balanced-softmax': 'baselines/balanced-softmax_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
    'logit-adjust': 'baselines/logit-adjust_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
    'weight-balancing': 'baselines/weight-balancing_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
    'logit-adjust-posthoc': ('baselines/logit-adjust-posthoc_resnet32-cifar_1xb128_cifar10-lt-ir100'
                             '-cpu.py'),
}
METHODS = ['ce', 'mbj', 'iem', 'stg', 'afa']
LABELS = [0, 0, 0, 9]  # STG stage 2 learns from head classes with >= 2 other samples
# STG stage 3 needs a prototype of every head class (> 100 samples: 0-7) from stage 2
STG_LABELS = [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 9, 9]


@pytest.fixture(autouse=True)
def scope():
    init_default_scope('mmpretrain')


def _config(method: str, family: str) -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs', CONFIGS[method]))
    name, extra = FAMILIES[family]
    backbone = dict(cfg.model.backbone.to_dict(), model_name=name, **extra)
    if family == 'vit' and method == 'afa':  # the neck after the last stage, on NCHW maps
        backbone = dict(type='TIMMBackbone', model_name=name, **extra)
        cfg.model.neck.placement = 'after_last_stage'
    cfg.model.backbone = backbone
    cfg.model.pop('predecessor', None)
    if cfg.model.type == 'FeatureCacheClassifier':
        cfg.model.require_pretrained = False  # STG stages 2-3 train on a loaded stage 1
    return cfg


def _build(cfg: Config):
    model = MODELS.build(cfg.model)
    for module in model.modules():
        if hasattr(module, 'set_class_counts'):
            module.set_class_counts(COUNTS)
    return model


def _step(model, cfg: Config, labels=LABELS) -> dict:
    """One ``train_step`` (data preprocessor, loss, backward, optimiser step)."""
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    g = torch.Generator().manual_seed(0)
    data = dict(inputs=torch.rand(len(labels), 3, 32, 32, generator=g) * 255,
                data_samples=[DataSample(metainfo=dict(sample_idx=i)).set_gt_label(y)
                              for i, y in enumerate(labels)])
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    log_vars = model.train_step(data, optim)
    after = [p for p in model.parameters() if p.requires_grad]
    assert torch.isfinite(log_vars['loss'])
    assert any(not torch.equal(a, b) for a, b in zip(after, before)), 'nothing was trained'
    return log_vars


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('family', list(FAMILIES))
def test_method_builds_and_trains_a_step(family, method):
    torch.manual_seed(0)
    cfg = _config(method, family)
    model = _build(cfg)
    head_in = getattr(getattr(model.head, 'fc', None), 'in_features', None)
    log_vars = _step(model, cfg, STG_LABELS if method == 'stg' else LABELS)
    if method == 'afa':
        assert log_vars['afa_num_gen'].item() > 0  # features generated and sent on
    if method == 'stg':  # stage 3 on the generator stage 2 has just trained once
        cfg3 = _config('stg3', family)
        stage3 = _build(cfg3)
        stage3.load_state_dict(model.state_dict(), strict=False)
        _step(stage3, cfg3, STG_LABELS)
    if head_in is not None and method in ('ce', 'mbj', 'stg'):
        with torch.no_grad():  # the head is as wide as what the backbone returns
            model.eval()
            feats = model.extract_feat(torch.zeros(2, 3, 32, 32))
        assert feats[-1].shape[-1] == head_in


@pytest.mark.parametrize('family', list(FAMILIES))
def test_issue35_baselines_on_any_family_by_model_name_alone(family):
    """Balanced Softmax, the logit-adjusted loss and weight balancing's stage 2 (the stage-1
    classifier kept, its backbone frozen) take a step; post-hoc logit adjustment predicts
    softmax(logits - log pi) of its classifier."""
    torch.manual_seed(0)
    for method in ('balanced-softmax', 'logit-adjust', 'weight-balancing'):
        cfg = _config(method, family)
        model = _build(cfg)
        _step(model, cfg)
        if method == 'weight-balancing':
            trainable = {n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad}
            assert trainable == {'head'}
    cfg = _config('logit-adjust-posthoc', family)
    model = _build(cfg).eval()
    images = torch.rand(2, 3, 32, 32) * 255
    scores = torch.stack([p.pred_score for p in model.predict(model.data_preprocessor(
        dict(inputs=images), False)['inputs'])])
    with torch.no_grad():
        x = model.extract_feat(model.data_preprocessor(dict(inputs=images), False)['inputs'],
                               stage='pre_logits')
        logits = model.head.classify(x)
    ref = torch.softmax(logits - torch.log(COUNTS.double() / COUNTS.sum()).float(), dim=1)
    torch.testing.assert_close(scores, ref)
