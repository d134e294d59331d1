"""Balanced Softmax, logit adjustment (loss and post-hoc), the class-balanced loss and weight
balancing's MaxNorm projection: values and gradients against hand-computed references, the
counts through ClassCountsHook's interface and checkpoints, and two-process DDP."""
import logging
import math
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401
from lt_plugins.engine.hooks import MaxNormHook
from lt_plugins.engine.hooks.max_norm_hook import max_norm_project_
from lt_plugins.models.losses import (BalancedSoftmaxLoss, ClassBalancedLoss, LDAMLoss,
                                      LogitAdjustedLoss)
from lt_plugins.models.losses.count_buffers import class_prior, log_class_prior
from lt_plugins.models.losses.ldam_loss import drw_class_weights
from lt_plugins.models.parts import PostHocLogitAdjustment
from tests.dist_utils import run_distributed
from tests.runner_utils import ToyLT


def _ce(row, target):
    return -row[target] + math.log(sum(math.exp(v) for v in row))


# -- the shared prior helper -----------------------------------------------------------------
def test_prior_and_log_prior_hand_computed():
    torch.testing.assert_close(class_prior([6, 3, 1]), torch.tensor([0.6, 0.3, 0.1],
                                                                    dtype=torch.float64))
    torch.testing.assert_close(log_class_prior([6, 3, 1]),
                               torch.tensor([math.log(0.6), math.log(0.3), math.log(0.1)]))
    with pytest.raises(ValueError, match='no training samples'):
        log_class_prior([4, 0])


# -- Balanced Softmax -------------------------------------------------------------------------
def test_balanced_softmax_value_hand_computed():
    loss = BalancedSoftmaxLoss(class_counts=[8, 2, 1])
    z = torch.tensor([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]])
    y = torch.tensor([1, 0])
    log_n = [math.log(8), math.log(2), 0.0]
    ref = [_ce([a + b for a, b in zip(z[i].tolist(), log_n)], int(y[i])) for i in range(2)]
    assert loss(z, y).item() == pytest.approx(sum(ref) / 2, rel=1e-6)
    # the same as logit adjustment with tau = 1 (log n and log pi differ by a constant)
    la = LogitAdjustedLoss(tau=1.0, class_counts=[8, 2, 1])
    assert la(z, y).item() == pytest.approx(loss(z, y).item(), rel=1e-6)
    # per-sample losses and sum
    per = loss(z, y, reduction_override='none')
    torch.testing.assert_close(per, torch.tensor(ref))


def test_balanced_softmax_gradient_two_classes_closed_form():
    """Two classes: L = -log sigma(d) with d = (z_y + log n_y) - (z_o + log n_o), so
    dL/dz_y = -(1 - sigma(d)) = -n_o e^{z_o} / (n_y e^{z_y} + n_o e^{z_o}) and
    dL/dz_o = +n_o e^{z_o} / (n_y e^{z_y} + n_o e^{z_o})."""
    n = [9.0, 1.0]
    loss = BalancedSoftmaxLoss(class_counts=[9, 1])
    z = torch.tensor([[0.3, 1.2]], requires_grad=True)
    y = torch.tensor([1])       # the rare class
    loss(z, y).backward()
    p_other = n[0] * math.exp(0.3) / (n[0] * math.exp(0.3) + n[1] * math.exp(1.2))
    torch.testing.assert_close(z.grad, torch.tensor([[p_other, -p_other]]))
    # plain CE would give the rare class a smaller push: sigma(z_0 - z_1)
    p_ce = math.exp(0.3) / (math.exp(0.3) + math.exp(1.2))
    assert p_other > p_ce
    # the value, in closed form
    assert loss(z, y).item() == pytest.approx(-math.log(1 - p_other), rel=1e-6)


def test_balanced_softmax_soft_labels_and_sample_weights():
    loss = BalancedSoftmaxLoss(class_counts=[3, 1])
    z = torch.tensor([[0.2, 0.4], [1.0, -1.0]])
    soft = torch.tensor([[0.75, 0.25], [0.0, 1.0]])
    adj = z + torch.log(torch.tensor([3.0, 1.0]))
    ref = -(soft * F.log_softmax(adj, dim=1)).sum(1)
    assert loss(z, soft).item() == pytest.approx(ref.mean().item(), rel=1e-6)
    w = torch.tensor([2.0, 0.5])
    assert loss(z, soft, weight=w).item() == pytest.approx((ref * w).mean().item(), rel=1e-6)


# -- logit-adjusted loss ----------------------------------------------------------------------
@pytest.mark.parametrize('tau', [0.0, 0.5, 2.0])
def test_logit_adjusted_loss_with_tau_hand_computed(tau):
    counts = [5, 3, 2]
    loss = LogitAdjustedLoss(tau=tau, class_counts=counts, loss_weight=0.5)
    z = torch.tensor([[0.1, 0.2, 0.3], [-0.4, 0.0, 0.9], [2.0, 1.0, 0.0]])
    y = torch.tensor([2, 0, 1])
    log_pi = [math.log(n / 10) for n in counts]
    ref = [_ce([v + tau * lp for v, lp in zip(z[i].tolist(), log_pi)], int(y[i]))
           for i in range(3)]
    assert loss(z, y).item() == pytest.approx(0.5 * sum(ref) / 3, rel=1e-6)
    if tau == 0.0:   # plain CE
        assert loss(z, y).item() == pytest.approx(0.5 * F.cross_entropy(z, y).item(), rel=1e-6)


def test_count_aware_losses_read_counts_like_ldam_and_reload_from_checkpoints():
    for cls, kw in ((BalancedSoftmaxLoss, {}), (LogitAdjustedLoss, dict(tau=1.5)),
                    (ClassBalancedLoss, dict(beta=0.99))):
        loss = cls(**kw)
        with pytest.raises(RuntimeError, match='ClassCountsHook'):
            loss(torch.zeros(2, 3), torch.tensor([0, 1]))
        loss.set_class_counts(torch.tensor([9, 3, 1]))        # ClassCountsHook's interface
        z, y = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), torch.tensor(
            [0, 1, 2, 2])
        fresh = cls(**kw)
        fresh.load_state_dict(loss.state_dict())              # buffers sized by the checkpoint
        torch.testing.assert_close(fresh.class_counts, torch.tensor([9, 3, 1]))
        assert fresh(z, y).item() == pytest.approx(loss(z, y).item(), rel=1e-6)
        with pytest.raises(ValueError, match='3 class counts'):
            loss(torch.zeros(2, 4), torch.tensor([0, 1]))
        with pytest.raises(ValueError, match='no training samples'):
            cls(**kw).set_class_counts([4, 0, 1])
    # an explicit list wins over the hook, and must match the training set's size
    explicit = BalancedSoftmaxLoss(class_counts=[1, 1])
    explicit.set_class_counts(torch.tensor([50, 5]))
    torch.testing.assert_close(explicit.class_counts, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match='training set has 3'):
        explicit.set_class_counts(torch.tensor([5, 5, 5]))
    # LDAM reads through the same base (unchanged behaviour)
    ldam = LDAMLoss()
    ldam.set_class_counts(torch.tensor([9, 3, 1]))
    again = LDAMLoss()
    again.load_state_dict(ldam.state_dict())
    torch.testing.assert_close(again.margins, ldam.margins)


def test_class_balanced_loss_is_the_effective_number_weighted_mean():
    counts = [100, 10, 1]
    loss = ClassBalancedLoss(beta=0.99, class_counts=counts)
    inv = [(1 - 0.99) / (1 - 0.99 ** n) for n in counts]
    w = [3 * v / sum(inv) for v in inv]
    torch.testing.assert_close(loss.class_weight(3), torch.tensor(w))
    z = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.5, 0.2], [0.3, 0.3, 0.9]])
    y = torch.tensor([0, 1, 2])
    ls = [_ce(z[i].tolist(), int(y[i])) for i in range(3)]
    ref = sum(w[int(y[i])] * ls[i] for i in range(3)) / sum(w[int(y[i])] for i in range(3))
    assert loss(z, y).item() == pytest.approx(ref, rel=1e-6)
    torch.testing.assert_close(loss.class_weight(3), drw_class_weights(torch.tensor(counts),
                                                                       0.99))
    with pytest.raises(ValueError, match='hard labels'):
        loss(z, torch.eye(3))


# -- post-hoc logit adjustment ---------------------------------------------------------------
def test_post_hoc_adjustment_hand_computed_and_inside_the_composed_head():
    part = PostHocLogitAdjustment(tau=0.5, class_counts=[90, 9, 1])
    z = torch.tensor([[2.0, 1.0, 0.0]])
    ref = torch.tensor([[2.0 - 0.5 * math.log(0.9), 1.0 - 0.5 * math.log(0.09),
                         0.0 - 0.5 * math.log(0.01)]])
    torch.testing.assert_close(part(z), ref)
    assert PostHocLogitAdjustment(tau=0.0)(z) is z      # tau 0: the classifier as it is
    # in a ComposedClsHead: prediction from the adjusted logits, training unchanged
    torch.manual_seed(0)
    head = MODELS.build(dict(type='ComposedClsHead', num_classes=3, in_channels=4,
                             classifier=dict(type='LinearClsHead'),
                             logit_adjustment=dict(tau=1.0)))
    plain = MODELS.build(dict(type='LinearClsHead', num_classes=3, in_channels=4))
    plain.load_state_dict(head.classifier.state_dict())
    head.logit_adjustment.set_class_counts(torch.tensor([90, 9, 1]))
    x = (torch.randn(5, 4), )
    logits = plain(x)
    adjusted = logits - torch.log(torch.tensor([0.9, 0.09, 0.01]))
    pred = head.predict(x)
    torch.testing.assert_close(torch.stack([p.pred_score for p in pred]),
                               F.softmax(adjusted, dim=1))
    samples = [DataSample().set_gt_label(i % 3) for i in range(5)]
    assert head.loss(x, samples)['loss'].item() == pytest.approx(
        plain.loss(x, samples)['loss'].item())


def test_post_hoc_part_loads_a_checkpoint_written_without_it():
    """A CE head's checkpoint (no ``class_counts`` of the part) loads strictly into the
    composed head; the counts the hook published stay; a saved composed head carries them."""
    ce = MODELS.build(dict(type='LinearClsHead', num_classes=3, in_channels=4))
    head = MODELS.build(dict(type='ComposedClsHead', num_classes=3, in_channels=4,
                             logit_adjustment=dict(tau=1.0)))
    head.logit_adjustment.set_class_counts(torch.tensor([5, 3, 2]))
    head.load_state_dict(ce.state_dict(), strict=True)
    torch.testing.assert_close(head.logit_adjustment.class_counts, torch.tensor([5, 3, 2]))
    torch.testing.assert_close(head.classifier.fc.weight, ce.fc.weight)
    other = MODELS.build(dict(type='ComposedClsHead', num_classes=3, in_channels=4,
                              logit_adjustment=dict(tau=1.0)))
    other.load_state_dict(head.state_dict(), strict=True)
    torch.testing.assert_close(other.logit_adjustment.class_counts, torch.tensor([5, 3, 2]))
    empty = MODELS.build(dict(type='ComposedClsHead', num_classes=3, in_channels=4,
                              logit_adjustment=dict(tau=1.0)))
    empty.load_state_dict(ce.state_dict(), strict=True)   # nothing published yet: still loads
    assert empty.logit_adjustment.class_counts.numel() == 0
    with pytest.raises(ValueError, match='tau must be >= 0'):
        PostHocLogitAdjustment(tau=-1.0)


# -- MaxNorm ----------------------------------------------------------------------------------
def test_max_norm_projection_hand_computed():
    w = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, -2.0], [0.6, 0.8]])
    inside = w[1].clone()
    before = max_norm_project_(w, 1.0)
    torch.testing.assert_close(before, torch.tensor([5.0, 0.5, 2.0, 1.0]))
    # rows above the radius land on it along their direction; the others stay bit-equal
    torch.testing.assert_close(w, torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, -1.0],
                                                [0.6, 0.8]]))
    assert torch.equal(w[1], inside)
    conv = torch.ones(2, 1, 2, 2)          # rows of any shape: norm over all but dim 0 (2)
    max_norm_project_(conv, 1.0)
    torch.testing.assert_close(conv, torch.full((2, 1, 2, 2), 0.5))


def _hook_runner(model, epoch=0, iteration=0):
    scalars = {}
    hub = SimpleNamespace(update_scalar=lambda k, v: scalars.__setitem__(k, v))
    logs = []
    runner = SimpleNamespace(model=model, message_hub=hub, iter=iteration, epoch=epoch,
                             logger=SimpleNamespace(info=logs.append))
    return runner, scalars, logs


def test_max_norm_hook_relative_radius_projection_logging_and_checkpoint_meta():
    head = torch.nn.Module()
    head.fc = torch.nn.Linear(2, 3)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[3.0, 4.0], [0.6, 0.8], [0.0, 2.0]]))  # 5, 1, 2
    model = torch.nn.Module()
    model.head = head
    hook = MaxNormHook(relative=0.25, interval=1)
    runner, scalars, logs = _hook_runner(model)
    hook.before_train(runner)
    assert hook.threshold == pytest.approx(1.0 + 0.25 * (5.0 - 1.0))     # 2.0
    hook.after_train_iter(runner, 0)
    torch.testing.assert_close(head.fc.weight.data, torch.tensor([[1.2, 1.6], [0.6, 0.8],
                                                                  [0.0, 2.0]]))
    assert scalars['train/maxnorm_max'] == pytest.approx(2.0)
    assert scalars['train/maxnorm_min'] == pytest.approx(1.0)
    assert scalars['train/maxnorm_projected'] == pytest.approx(1 / 3)
    assert [scalars[f'train/maxnorm_c{c}'] for c in range(3)] == pytest.approx([2.0, 1.0, 2.0])
    assert 'per-class norms of head.fc.weight' in logs[-1] and '1.0000' in logs[-1]
    # the radius travels in the checkpoint meta and is restored (a resumed run keeps it)
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    resumed = MaxNormHook(relative=0.25)
    resumed.after_load_checkpoint(runner, ckpt)
    resumed.before_train(runner)
    assert resumed.threshold == pytest.approx(2.0)
    with pytest.raises(ValueError, match='exactly one'):
        MaxNormHook()
    with pytest.raises(ValueError, match="no parameter 'head.nope'"):
        MaxNormHook(param='head.nope', max_norm=1.0).before_train(runner)


def _wb_runner(work_dir, load_from, max_epochs=2, name='wb'):
    return Runner(
        model=dict(type='DecoupledClassifier', reinit_head=False,
                   backbone=dict(type='TIMMBackbone', model_name='resnet20_cifar'),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=4, in_channels='auto',
                             loss=dict(type='ClassBalancedLoss', beta=0.99)),
                   data_preprocessor=dict(type='ClsDataPreprocessor')),
        work_dir=work_dir, experiment_name=name,
        train_dataloader=dict(dataset=ToyLT(), batch_size=12, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True, seed=0)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=0.1)),
        custom_hooks=[dict(type='ClassCountsHook'),
                      dict(type='MaxNormHook', relative=0.1, interval=2)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0), default_scope='mmpretrain', load_from=load_from,
        log_level=logging.WARNING)


def test_weight_balancing_stage2_through_the_runner_keeps_rows_within_the_radius(tmp_path):
    """Stage 1 (CE, 1 epoch), then stage 2: frozen backbone, the stage-1 classifier fine-tuned
    with the class-balanced loss and MaxNorm; every row ends within the radius computed from
    the stage-1 rows, and the radius is in the checkpoint meta."""
    stage1 = Runner(
        model=dict(type='AutoChannelClassifier',
                   backbone=dict(type='TIMMBackbone', model_name='resnet20_cifar'),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=4, in_channels='auto'),
                   data_preprocessor=dict(type='ClsDataPreprocessor')),
        work_dir=str(tmp_path / 's1'), experiment_name='s1',
        train_dataloader=dict(dataset=ToyLT(), batch_size=12, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True, seed=0)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                                          weight_decay=5e-3)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0), default_scope='mmpretrain', log_level=logging.WARNING)
    stage1.train()
    ckpt1 = osp.join(str(tmp_path / 's1'), 'epoch_1.pth')
    w1 = torch.load(ckpt1, map_location='cpu', weights_only=False)['state_dict'][
        'head.fc.weight']
    norms1 = w1.norm(dim=1)
    radius = float(norms1.min() + 0.1 * (norms1.max() - norms1.min()))
    runner = _wb_runner(str(tmp_path / 's2'), ckpt1)
    runner.train()
    w2 = runner.model.head.fc.weight.detach()
    assert float(w2.norm(dim=1).max()) <= radius * (1 + 1e-6)
    assert not torch.equal(w2, w1)
    ckpt2 = torch.load(osp.join(str(tmp_path / 's2'), 'epoch_2.pth'), map_location='cpu',
                       weights_only=False)
    assert ckpt2['meta']['lt_max_norm_threshold']['head.fc.weight'] == pytest.approx(radius)
    torch.testing.assert_close(ckpt2['state_dict']['head.loss_module.class_counts'],
                               torch.tensor(ToyLT.class_counts))
    # the backbone stayed frozen
    sd1 = torch.load(ckpt1, map_location='cpu', weights_only=False)['state_dict']
    for key, value in ckpt2['state_dict'].items():
        if key.startswith('backbone.'):
            torch.testing.assert_close(value, sd1[key], rtol=0, atol=0, msg=key)
    scalars = runner.message_hub.log_scalars
    assert 'train/maxnorm_c3' in scalars and 'train/maxnorm_max' in scalars


# -- DDP --------------------------------------------------------------------------------------
def _ddp_train(rank, world_size, work_dir):
    import lt_plugins  # noqa: F401
    torch.manual_seed(0)
    runner = Runner(
        model=dict(type='AutoChannelClassifier',
                   backbone=dict(type='TIMMBackbone', model_name='resnet20_cifar'),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=4, in_channels='auto',
                             loss=dict(type='BalancedSoftmaxLoss')),
                   data_preprocessor=dict(type='ClsDataPreprocessor')),
        work_dir=work_dir, experiment_name='ddp',
        train_dataloader=dict(dataset=ToyLT(), batch_size=6, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True, seed=0)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        custom_hooks=[dict(type='ClassCountsHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        launcher='pytorch', randomness=dict(seed=0), default_scope='mmpretrain',
        log_level=logging.WARNING)
    runner.train()
    model = runner.model.module
    seen = len(runner.train_dataloader.sampler)          # this rank's shard of the data
    return dict(counts=model.head.loss_module.class_counts.clone(), seen=seen,
                weight=model.head.fc.weight.detach().clone())


@pytest.mark.slow  # two spawned processes (~20 s of CPU)
def test_ddp_class_counts_identical_on_every_rank_and_in_the_checkpoint(tmp_path):
    r0, r1 = run_distributed(_ddp_train, str(tmp_path))
    full = torch.tensor(ToyLT.class_counts)
    assert r0['seen'] + r1['seen'] == int(full.sum())     # each rank trained on half ...
    torch.testing.assert_close(r0['counts'], full, rtol=0, atol=0)   # ... with all counts
    torch.testing.assert_close(r1['counts'], full, rtol=0, atol=0)
    torch.testing.assert_close(r0['weight'], r1['weight'], rtol=0, atol=0)
    ckpt = torch.load(osp.join(str(tmp_path), 'epoch_1.pth'), map_location='cpu',
                      weights_only=False)
    torch.testing.assert_close(ckpt['state_dict']['head.loss_module.class_counts'], full)
    assert ckpt['meta']['lt_class_counts'] == ToyLT.class_counts
