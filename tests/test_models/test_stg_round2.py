"""Issue 19 STG options: the median / quantile head-tail split and the classifier token
choice, against hand-computed references."""
import pytest
import torch
import torch.nn as nn

import lt_plugins  # noqa: F401
from lt_plugins.models.heads.stg_cls_head import STGClsHead
from lt_plugins.models.heads.stg_generator_head import STGGeneratorHead
from lt_plugins.models.stg import head_tail_split, resolve_threshold, stg_augment
from .test_stg import COUNTS, _samples, _trained_generator_state

CIFAR10_IR100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_median_split_hand_values():
    # median of 500, 300, 200, 120, 50, 20 = (200 + 120) / 2 = 160
    assert resolve_threshold(torch.tensor(COUNTS), 'median') == pytest.approx(160.0)
    assert head_tail_split(torch.tensor(COUNTS), 'median').tolist() == [True] * 3 + [False] * 3
    # CIFAR-10-LT IR100: median (645 + 387) / 2 = 516 -> 5 head / 5 tail (100 gives 8 / 2)
    assert resolve_threshold(torch.tensor(CIFAR10_IR100), 'median') == pytest.approx(516.0)
    assert head_tail_split(torch.tensor(CIFAR10_IR100), 'median').sum().item() == 5
    assert head_tail_split(torch.tensor(CIFAR10_IR100), 100).sum().item() == 8
    # quantile 0.25 of the six counts (linear): position 1.25 -> 50 + 0.25 * 70 = 67.5
    assert resolve_threshold(torch.tensor(COUNTS), 'q0.25') == pytest.approx(67.5)
    assert head_tail_split(torch.tensor(COUNTS), 'q0.25').tolist() == [True] * 4 + [False] * 2
    # classes without images are left out of the quantile
    assert resolve_threshold(torch.tensor(COUNTS + [0, 0]), 'median') == pytest.approx(160.0)
    for bad in ('mean', 'q1.5', 'q'):
        with pytest.raises(ValueError, match='head_threshold'):
            STGClsHead(6, 4, class_counts=COUNTS, head_threshold=bad)


def test_median_split_reaches_both_stages():
    s2 = STGGeneratorHead(6, 4, class_counts=COUNTS, head_threshold='median',
                          dictionary_size=0, smooth_momentum=0.0)
    assert s2.head_mask().tolist() == [True] * 3 + [False] * 3
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 5])
    s2.loss((torch.randn(10, 4), ), _samples(labels))
    # only the three head classes (not class 3, head at threshold 100) feed the prototypes
    assert s2.generator.proto_count.tolist() == [2, 2, 2, 0, 0, 0]
    s3 = STGClsHead(6, 4, class_counts=COUNTS, head_threshold='median')
    s3.load_state_dict(s2.state_dict(), strict=False)
    feats = torch.randn(6, 4)
    out = s3.augment_features(feats, torch.tensor([0, 1, 2, 3, 4, 5]),
                              torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:3], feats[:3])
    assert not torch.equal(out[3], feats[3])  # class 3 (120 images) is tail at the median


def _stage2_with_hand_classifier():
    s2 = _trained_generator_state()
    with torch.no_grad():
        w = torch.zeros(6, 4)
        w[:4] = torch.eye(4)
        w[4:] = 10.0  # the tail classes score highest: must be masked out
        s2.fc.weight.copy_(w)
        s2.fc.bias.zero_()
    return s2


def _load(head, sd):
    wrapper = nn.Module()
    wrapper.head = head
    return wrapper.load_state_dict({f'head.{k}': v for k, v in sd.items()}, strict=False)


def test_classifier_token_choice_hand_values_and_checkpoints():
    s2 = _stage2_with_hand_classifier()
    head = STGClsHead(6, 4, class_counts=COUNTS, token_source='classifier')
    head.init_weights()
    res = _load(head, s2.state_dict())
    assert not any('token_fc' in k for k in res.missing_keys)
    torch.testing.assert_close(head.token_fc_weight, s2.fc.weight)  # stage-1 classifier kept
    assert not torch.equal(head.fc.weight, s2.fc.weight)  # while cRT re-initialises fc
    feats = torch.tensor([[1., 0., 0., 0.], [0., 0., 3., 0.], [0., 2., 0., 5.],
                          [-1., -2., -3., -0.5]])
    assert head.select_head_class(feats).tolist() == [0, 2, 3, 3]
    # the augmentation borrows exactly those tokens
    labels = torch.tensor([4, 5, 4, 5])
    out = head.augment_features(feats, labels, torch.Generator().manual_seed(0))
    s2.generator.eval()
    mu, sigma = s2.generator(feats, torch.tensor([0, 2, 3, 3]))
    strength = torch.sqrt(torch.tensor([20. / 50, 1., 20. / 50, 1.]))
    ref = stg_augment(feats, mu, sigma, strength, 1.5, 0.5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, ref)
    # the default (prototype) choice differs on these features: the option is not ignored
    proto = STGClsHead(6, 4, class_counts=COUNTS)
    _load(proto, s2.state_dict())
    assert proto.select_head_class(feats).tolist() != [0, 2, 3, 3]
    # resuming a stage-3 checkpoint keeps the stage-1 classifier, not the trained fc
    again = STGClsHead(6, 4, class_counts=COUNTS, token_source='classifier')
    _load(again, head.state_dict())
    torch.testing.assert_close(again.token_fc_weight, s2.fc.weight)
    assert again.select_head_class(feats).tolist() == [0, 2, 3, 3]


def test_classifier_token_choice_needs_stage2_checkpoint():
    head = STGClsHead(6, 4, class_counts=COUNTS, token_source='classifier')
    with pytest.raises(RuntimeError, match='stage-1 classifier'):
        head.select_head_class(torch.randn(2, 4))
    with pytest.raises(ValueError, match='token_source'):
        STGClsHead(6, 4, class_counts=COUNTS, token_source='nearest')
    # the default head keeps its state dict keys
    assert not any('token_fc' in k for k in STGClsHead(6, 4).state_dict())


@pytest.mark.parametrize('data', ['cifar10-lt-ir100', 'fashion-mnist-lt-ir100'])
def test_round2_configs_match_their_references(data):
    from mmengine.config import Config
    t = f'resnet32-cifar_1xb128_{data}-cpu'
    crt = Config.fromfile(f'configs/baselines/crt_{t}.py')
    for name in ('sgd', 'mixft10-sgd'):
        cfg = Config.fromfile(f'configs/stg/stg-stage3_{t}-{name}.py')
        # the SGD stage 3 trains like the package's cRT (level cRT arm)
        assert cfg.optim_wrapper.optimizer == crt.optim_wrapper.optimizer
        assert cfg.param_scheduler == crt.param_scheduler
        assert cfg.train_cfg.max_epochs == crt.train_cfg.max_epochs
        assert cfg.train_dataloader.sampler.type == crt.train_dataloader.sampler.type
        assert cfg.model.head.classifier == 'crt' and cfg.model.head.augment == 'stg'
    assert Config.fromfile(
        f'configs/stg/stg-stage3_{t}-mixft10-sgd-noaug.py').model.head.augment == 'none'
    s1 = Config.fromfile(f'configs/stg/stg-stage1_{t}-mixft10.py')
    assert s1.load_from == f'work_dirs/ce_{t}/epoch_30.pth'
    assert s1.train_cfg.max_epochs == 10 and s1.optim_wrapper.optimizer.lr == 0.01
    assert s1.model.train_cfg.augments.type == 'Mixup'
    assert Config.fromfile(
        f'configs/stg/stg-stage3_{t}-tokencls.py').model.head.token_source == 'classifier'
    for stage in (2, 3):
        cfg = Config.fromfile(f'configs/stg/stg-stage{stage}_{t}-median.py')
        assert cfg.model.head.head_threshold == 'median'


def test_kl_tool_uses_the_heads_token_rule():
    from types import SimpleNamespace

    from tests.test_tools import load_tool
    tool = load_tool('tools/analysis/stg_kl_divergence.py')
    s2 = _stage2_with_hand_classifier()
    head = STGClsHead(6, 4, class_counts=COUNTS, token_source='classifier')
    _load(head, s2.state_dict())
    feats = torch.tensor([[1., 0., 0., 0.], [0., 0., 3., 0.], [0., 2., 0., 5.]])
    res = tool.analyse(SimpleNamespace(head=head), feats)
    assert res['head_class'] == [0, 2, 3]
