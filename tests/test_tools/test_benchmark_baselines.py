"""Issue-35 arms of tools/benchmark/run.py: Balanced Softmax, logit adjustment (loss and post
hoc), weight balancing, and the methods' parts on a Balanced Softmax model with their
same-recipe controls: recipes, tau chosen on validation only, and quick runs."""
import json
import os.path as osp

import pytest
import torch

from lt_plugins.benchmark import ARMS, get_dataset_spec, plan, select_arms, summarize
from lt_plugins.benchmark.arms import CE, LA_TAU_GRID, SCREENS
from lt_plugins.benchmark.configs import build_stage_config
from tests.test_tools import load_tool

NEW = ('balanced-softmax', 'logit-adjust', 'logit-adjust-posthoc', 'weight-balancing-stage1',
       'weight-balancing', 'balanced-softmax+mbj', 'balanced-softmax-ft-frozen',
       'balanced-softmax+iem', 'balanced-softmax+iem-classifier-only', 'balanced-softmax+stg',
       'balanced-softmax+stg-crt')


def _cfg(tmp_path, arm, stage=-1, name='digits-lt', schedule='cpu', **kw):
    return build_stage_config(ARMS[arm].stage.chain()[stage], get_dataset_spec(name, {}),
                              schedule, 0, str(tmp_path), **kw)


def test_new_arms_are_registered_listed_and_screened_with_their_controls():
    assert set(NEW) <= set(ARMS)
    listing = load_tool('tools/benchmark/run.py').list_arms()
    for name in NEW:
        assert f'\n{name} ' in listing
    assert set(SCREENS['lt-baselines']) >= {'ce', 'crt', 'balanced-softmax', 'logit-adjust',
                                            'logit-adjust-posthoc', 'weight-balancing'}
    compose = SCREENS['compose-balanced-softmax']
    for arm, control in (('balanced-softmax+mbj', 'balanced-softmax-ft-frozen'),
                         ('balanced-softmax+iem', 'balanced-softmax+iem-classifier-only'),
                         ('balanced-softmax+stg', 'balanced-softmax+stg-crt')):
        assert arm in compose and control in compose
        assert ARMS[control].kind == 'control' and ARMS[control].control_of == arm
        # a composition loads the one Balanced Softmax stage 1 of its seed
        assert ARMS[arm].stage.chain()[0] is ARMS['balanced-softmax'].stage
        assert ARMS[control].stage.chain()[0] is ARMS['balanced-softmax'].stage
    # the post-hoc arm reads the CE checkpoint, trains nothing, one reading per tau
    posthoc = ARMS['logit-adjust-posthoc'].stage
    assert posthoc.parent is CE and not posthoc.train
    assert {r['model.head.logit_adjustment.tau'] for r in posthoc.readings.values()} == set(
        LA_TAU_GRID) and 0.0 in LA_TAU_GRID
    tasks = plan(select_arms(['lt-baselines', 'compose-balanced-softmax']), [0], '/x')
    keys = [t.stage.key for t in tasks]
    assert keys.count('ce') == 1 and keys.count('balanced-softmax') == 1
    assert keys.count('balanced-softmax/iem-read-keep') == 1     # arm and control: one run


@pytest.mark.parametrize('name', ['digits-lt', 'cifar100-lt'])
def test_new_arm_recipes_take_the_dataset(tmp_path, name):
    classes = get_dataset_spec(name, {}).num_classes
    bs = _cfg(tmp_path, 'balanced-softmax', name=name)
    assert bs.model.head.loss.type == 'BalancedSoftmaxLoss'
    assert bs.model.head.num_classes == classes
    la = _cfg(tmp_path, 'logit-adjust', name=name)
    assert la.model.head.loss.type == 'LogitAdjustedLoss' and la.model.head.loss.tau == 1.0
    ph = _cfg(tmp_path, 'logit-adjust-posthoc', name=name, load_from='ce.pth')
    assert ph.model.head.type == 'ComposedClsHead' and ph.model.head.num_classes == classes
    assert ph.load_from == 'ce.pth'
    spec = get_dataset_spec(name, {})
    scale = spec.batch_size / 128 * spec.lr_factor
    wb1 = _cfg(tmp_path, 'weight-balancing', 0, name=name)
    assert wb1.optim_wrapper.optimizer.weight_decay == 5e-3
    assert wb1.optim_wrapper.optimizer.lr == pytest.approx(0.02 * scale)
    wb = _cfg(tmp_path, 'weight-balancing', name=name)
    assert wb.model.type == 'DecoupledClassifier' and wb.model.reinit_head is False
    assert wb.model.head.loss.type == 'ClassBalancedLoss'
    assert wb.optim_wrapper.optimizer.weight_decay == 0.1
    assert [h.type for h in wb.custom_hooks] == ['ClassCountsHook', 'MaxNormHook']
    assert wb.train_dataloader.sampler.type == 'DefaultSampler'
    # MBJ on Balanced Softmax: MBJ's chosen reading on CE with the batch loss balanced; the
    # control differs by the memory only
    mbj, ctl = _cfg(tmp_path, 'balanced-softmax+mbj', name=name), _cfg(
        tmp_path, 'balanced-softmax-ft-frozen', name=name)
    for cfg in (mbj, ctl):
        assert cfg.model.type == 'DecoupledClassifier' and cfg.model.reinit_head is False
        assert cfg.model.head.loss.type == 'BalancedSoftmaxLoss'
        assert cfg.model.head.memory.size == 50 * classes and cfg.model.head.eta == 5.0
        assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.01 * scale)
    assert mbj.model.head.get('memory_enabled', True) and ctl.model.head.memory_enabled is False
    # STG stage 3 on Balanced Softmax: its loss balanced, instance-balanced batches; the
    # control: the same stage without augmentation
    stg, crt = _cfg(tmp_path, 'balanced-softmax+stg', name=name), _cfg(
        tmp_path, 'balanced-softmax+stg-crt', name=name)
    for cfg in (stg, crt):
        assert cfg.model.head.loss.type == 'BalancedSoftmaxLoss'
        assert cfg.train_dataloader.sampler.type == 'DefaultSampler'
        assert cfg.optim_wrapper.optimizer.type == 'SGD'
        assert cfg.model.head.head_threshold == 'median'
    assert stg.model.head.augment == 'stg' and stg.model.head.lam == 0.5
    assert crt.model.head.augment == 'none'
    assert _cfg(tmp_path, 'balanced-softmax+stg', -2, name=name).model.head.head_threshold == \
        'median'
    iem = _cfg(tmp_path, 'balanced-softmax+iem', name=name)
    assert iem.model.head.classifier.loss.type == 'BalancedSoftmaxLoss'
    assert iem.model.reinit_head is False and iem.optim_wrapper.optimizer.lr == 0.0
    assert ARMS['balanced-softmax+iem'].reading_names == ('default', 'keys', 'keys-0.8')
    assert ARMS['balanced-softmax+iem-classifier-only'].reading_names == ('classifier-only', )


def _result(readings, wall=0.0, step=None):
    return dict(wall_s=wall, step_s=step, readings={
        k: dict(val=dict(top1=v), test=dict(top1=t)) for k, (v, t) in readings.items()})


def test_post_hoc_tau_is_chosen_on_validation_only(tmp_path):
    """tau 1.5 has the best mean val top-1 and tau 0.5 the best test top-1: 1.5 is reported,
    its test numbers; the readings are evaluated on the val split and the test split of the
    stage's own loaders, and change nothing but tau."""
    arms = select_arms(['ce', 'logit-adjust-posthoc'])
    results = {}
    for seed, shift in ((0, 0.0), (1, 1.0)):
        results[(seed, 'ce')] = _result({'default': (50 + shift, 50)}, wall=10, step=0.1)
        results[(seed, 'ce/logit-adjust-posthoc')] = _result({
            'tau0': (50 + shift, 50), 'tau0.5': (55, 99), 'tau1': (56, 60),
            'tau1.5': (57 + shift, 61 + shift), 'tau2': (52, 70)})
    out = summarize(arms, [0, 1], results)
    entry = out['arms']['logit-adjust-posthoc']
    assert entry['reading'] == 'tau1.5'
    assert entry['test']['top1'] == pytest.approx(61.5)
    assert entry['readings_val']['tau1.5'] == pytest.approx(57.5)
    for reading in ARMS['logit-adjust-posthoc'].stage.readings.values():
        assert list(reading) == ['model.head.logit_adjustment.tau']
    cfg = _cfg(tmp_path, 'logit-adjust-posthoc')
    assert cfg.val_dataloader.dataset.split == 'val'
    assert cfg.test_dataloader.dataset.split == 'test'


def _run(argv):
    return load_tool('tools/benchmark/run.py').main(argv)


def test_quick_run_of_balanced_softmax_and_weight_balancing(tmp_path):
    """Both train through the command; the Balanced Softmax checkpoint carries the training
    counts in its loss buffer, the weight-balancing stage 2 keeps its rows within the MaxNorm
    radius it stored."""
    summary = _run(['--dataset', 'digits-lt', '--quick', '--jobs', '0', '--methods',
                    'balanced-softmax', 'weight-balancing', '--work-dir', str(tmp_path)])
    assert summary['failed_stages'] == 0
    assert set(summary['arms']) == {'balanced-softmax', 'weight-balancing'}
    root = osp.join(str(tmp_path), 'digits-lt-imb_factor25', 'cpu-quick', 's0')
    bs = torch.load(json.load(open(osp.join(root, 'balanced-softmax', 'result.json')))[
        'checkpoint'], map_location='cpu', weights_only=False)
    counts = bs['state_dict']['head.loss_module.class_counts']
    assert counts.tolist() == summary['arms']['balanced-softmax']['train_counts']
    assert counts.tolist() == bs['meta']['lt_class_counts']
    wb = torch.load(osp.join(root, 'weight-balancing-stage1', 'weight-balancing', 'epoch_1.pth'),
                    map_location='cpu', weights_only=False)
    radius = wb['meta']['lt_max_norm_threshold']['head.fc.weight']
    norms = wb['state_dict']['head.fc.weight'].norm(dim=1)
    assert float(norms.max()) <= radius * (1 + 1e-6)
    assert 0 <= summary['arms']['weight-balancing']['test']['top1'] <= 100


@pytest.mark.slow   # ~40 s: CE, then five post-hoc readings on val and test
def test_quick_run_of_the_post_hoc_arm_reports_the_best_validation_tau(tmp_path):
    summary = _run(['--dataset', 'digits-lt', '--quick', '--jobs', '0', '--methods',
                    'logit-adjust-posthoc', '--work-dir', str(tmp_path)])
    entry = summary['arms']['logit-adjust-posthoc']
    vals = entry['readings_val']
    assert set(vals) == {f'tau{t:g}' for t in LA_TAU_GRID}
    assert entry['reading'] == max(vals, key=vals.get)
    root = osp.join(str(tmp_path), 'digits-lt-imb_factor25', 'cpu-quick', 's0')
    result = json.load(open(osp.join(root, 'ce', 'logit-adjust-posthoc', 'result.json')))
    ce = json.load(open(osp.join(root, 'ce', 'result.json')))
    assert result['checkpoint'] == ce['checkpoint'] and result['wall_s'] == 0.0
    # tau 0 is the CE model itself
    assert result['readings']['tau0']['test'] == ce['readings']['default']['test']
