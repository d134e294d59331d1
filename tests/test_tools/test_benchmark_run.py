"""tools/benchmark/run.py and lt_plugins.benchmark: arms, shared stages, configs on any
dataset, selection on validation, quick runs end to end, packs, the README table."""
import copy
import glob
import os
import json
import os.path as osp
import pickle

import numpy as np
import pytest

from lt_plugins.benchmark import (ARMS, Arm, Stage, get_dataset_spec, markdown_table, plan,
                                  register_arm, select_arms, summarize)
from lt_plugins.benchmark.arms import CE, CRT, SCREENS
from lt_plugins.benchmark.configs import build_stage_config
from tests.test_tools import load_tool

METHODS = ('CE', 'cRT', 'LWS', 'tau-norm', 'MBJ', 'IEM', 'STG', 'AFA')


def test_every_method_has_default_arms_with_paper_and_recommended_readings():
    default = select_arms(None)
    methods = {a.method for a in default}
    assert set(METHODS) <= methods
    for method in ('MBJ', 'IEM', 'STG', 'AFA'):
        kinds = {a.kind for a in default if a.method == method}
        assert {'paper', 'recommended'} <= kinds, method
    # a method name selects its default arms; an arm name itself; unknown names fail
    assert [a.name for a in select_arms(['STG'])] == ['stg-paper', 'stg-ce-median-sgd',
                                                     'stg-ce-median-sgd-crt']
    assert [a.name for a in select_arms(['mbj-beta1+crt'])] == ['mbj-beta1+crt']
    with pytest.raises(ValueError, match='no such arm or method'):
        select_arms(['nope'])
    assert len(select_arms(['all'])) == len(ARMS)


def test_register_arm_plugs_in_and_refuses_a_different_recipe_under_a_known_name():
    stage = Stage('ce-ls', CE.template, {'model.head.loss.label_smooth_val': 0.1})
    try:
        register_arm(Arm('ce-ls', 'CE+LS', stage, 'variant', 'label smoothing'))
        with pytest.raises(ValueError):   # not a default arm: its method name selects none
            select_arms(['CE+LS'])
        assert [a.name for a in select_arms(['ce-ls'])] == ['ce-ls']
    finally:
        ARMS.pop('ce-ls', None)
    clash = Stage('crt', CRT.template, {'train_cfg.max_epochs': 3}, parent=CE)
    with pytest.raises(ValueError, match="stage 'ce/crt' differs"):
        register_arm(Arm('crt-short', 'cRT', clash))
    assert 'crt-short' not in ARMS
    with pytest.raises(ValueError, match='not readings of stage'):
        Arm('bad', 'IEM', ARMS['iem'].stage, readings=('no-such-reading', ))


def test_controls_are_marked_and_control_a_registered_arm_of_their_method():
    controls = {n for n, a in ARMS.items() if a.kind == 'control'}
    assert {'ce-ft', 'ce-ft-lr1e-3', 'ce-ft-lr1e-4', 'ce-ft-bbmult0.1', 'iem-ft10-ce-ft',
            'stg-crt', 'stg-gaussian', 'stg-dropout', 'stg-stage1+crt', 'stg-sgd-crt',
            'stg-median-crt', 'stg-mixft10-crt', 'stg-mixft10-stage1+crt',
            'stg-mixft10-sgd-crt', 'afa-nogen', 'afa-nogen+crt', 'afa-s15-nogen',
            'afa-s15-ce+crt'} <= controls
    for name in controls:
        arm = ARMS[name]
        target = ARMS[arm.control_of]
        assert target.kind != 'control' and target.method == arm.method, name
    assert ARMS['ce-ft'].control_of == 'mbj-paper'
    assert ARMS['ce-ft-lr1e-3'].control_of == 'mbj-lr1e-3'
    assert ARMS['stg-gaussian'].control_of == 'stg'
    assert ARMS['stg-mixft10-crt'].control_of == 'stg-mixft10'
    # the IEM ft10 control is the one CE fine-tuning run, not a second one
    assert ARMS['iem-ft10-ce-ft'].stage is ARMS['ce-ft'].stage
    with pytest.raises(ValueError, match='control_of'):
        register_arm(Arm('x-control', 'CE', CE, 'control'))
    with pytest.raises(ValueError, match='control_of'):
        register_arm(Arm('x-variant', 'CE', CE, 'variant', control_of='ce'))
    assert 'x-control' not in ARMS and 'x-variant' not in ARMS


def test_screens_run_each_arm_with_its_control_in_one_call(tmp_path):
    assert {'mbj-screen-lr', 'mbj-screen-memory', 'mbj-screen-memory-lr1e-4',
            'iem-screen-ft10', 'iem-screen-const',
            'iem-ablations',
            'stg-screen-controls', 'stg-screen-sgd', 'stg-screen-median',
            'stg-screen-mixft10', 'stg-screen-ce', 'afa-screen15'} <= set(SCREENS)
    for screen, names in SCREENS.items():
        arms = select_arms([screen])
        assert [a.name for a in arms] == list(names)
        for arm in arms:
            if arm.kind == 'control':
                assert arm.control_of in names, (screen, arm.name)
    for reading in ('lr1e-3', 'lr1e-4', 'bbmult0.1'):   # each lr next to its CE control
        assert f'ce-ft-{reading}' in SCREENS['mbj-screen-lr']
        assert ARMS[f'ce-ft-{reading}'].control_of == f'mbj-{reading}'
    tasks = plan(select_arms(['stg-screen-mixft10']), [0], str(tmp_path))
    keys = [t.stage.key for t in tasks]
    assert keys.count('ce') == 1 and keys.count('ce/stg-stage1-mixft10') == 1
    assert keys.count('ce/stg-stage1-mixft10/stg-stage2') == 1   # one stage 2, six stage 3


def test_screen_recipes_match_their_configs(tmp_path):
    """The overrides of the round-2 arms give what the -cpu-<screen> configs say."""
    spec = get_dataset_spec('digits-lt')
    scale = spec.batch_size / 128 * spec.lr_factor

    def cfg(arm, stage=-1, **kw):
        return build_stage_config(ARMS[arm].stage.chain()[stage], spec, 'cpu', 0,
                                  str(tmp_path), **kw)
    mbj, ctl = cfg('mbj-lr1e-3'), cfg('ce-ft-lr1e-3')
    assert mbj.optim_wrapper.optimizer.lr == pytest.approx(1e-3 * scale)
    assert ctl.optim_wrapper.optimizer.lr == pytest.approx(1e-3 * scale)
    assert mbj.model.head.get('memory_enabled', True) and ctl.model.head.memory_enabled is False
    assert cfg('mbj-lr1e-3-perclass5').model.head.memory.per_class_slots == 5
    bb = cfg('mbj-bbmult0.1').optim_wrapper.paramwise_cfg.custom_keys.backbone
    assert bb.lr_mult == 0.1
    crt = cfg('mbj-lr1e-3+crt')
    assert crt.model.reinit_head and crt.optim_wrapper.optimizer.lr == pytest.approx(0.1 * scale)
    # the memory screen at lr 1e-4 and its cRT start from the lr 1e-4 MBJ stage
    beta1 = cfg('mbj-lr1e-4-beta1')
    assert beta1.model.head.memory.beta == 1.0
    assert beta1.optim_wrapper.optimizer.lr == pytest.approx(1e-4 * scale)
    assert ARMS['mbj-lr1e-4+crt'].stage.parent is ARMS['mbj-lr1e-4'].stage
    rings = cfg('mbj-lr1e-4-perclass5')
    assert rings.model.head.memory.per_class_slots == 5 and rings.model.head.memory.size is None
    assert rings.optim_wrapper.optimizer.lr == pytest.approx(1e-4 * scale)
    assert cfg('mbj-lr1e-4-capacity').model.head.memory_reduction == 'capacity'
    # MBJ + RIDE at lr 1e-4 and its control differ only in the memory
    mr, rc = cfg('mbj-ride-lr1e-4'), cfg('ride-ft-lr1e-4')
    assert mr.optim_wrapper.optimizer.lr == rc.optim_wrapper.optimizer.lr == pytest.approx(
        1e-4 * scale)
    assert mr.model.head.mbj.eta == 15.0 and rc.model.head.mbj is None
    assert ARMS['ride-ft-lr1e-4'].control_of == 'mbj-ride-lr1e-4'
    iem = cfg('iem-ft10-memlr1e-3-cbs')
    assert iem.train_cfg.max_epochs == 10 and iem.param_scheduler[0].type == 'ConstantLR'
    assert iem.optim_wrapper.optimizer.lr == pytest.approx(0.01 * scale)
    assert iem.optim_wrapper.paramwise_cfg.custom_keys['head.global_memory'].fixed_lr == 1e-3
    assert iem.train_dataloader.sampler.type == 'ClassBalancedSampler'
    assert ARMS['iem-ft10'].stage.parent is CE
    # its control: the same lr, epochs and sampler, no memory
    cbs_ctl = cfg('iem-ft10-ce-ft-cbs')
    assert cbs_ctl.train_dataloader.sampler.type == 'ClassBalancedSampler'
    assert cbs_ctl.model.head.memory_enabled is False and cbs_ctl.train_cfg.max_epochs == 10
    assert cbs_ctl.optim_wrapper.optimizer.lr == pytest.approx(0.01 * scale)
    assert ARMS['iem-ft10-ce-ft-cbs'].control_of == 'iem-ft10-memlr1e-3-cbs'
    paper = cfg('iem-ft10').optim_wrapper.paramwise_cfg.custom_keys['head.local_memory']
    assert paper.fixed_lr == 1e-5
    # the former bench_iem_accuracy.py variants / readings; a reading of a memory the variant
    # lacks (weights on it alone) is left out
    assert {'classifier-heavy', 'keys-memory-only', 'global-only', 'local-only'} <= set(
        ARMS['iem-paper@readings'].stage.readings)
    assert 'global-only' not in ARMS['iem-no-global@readings'].stage.readings
    assert 'local-only' not in ARMS['iem-no-local@readings'].stage.readings
    assert cfg('iem-frozen-writes@readings').model.head.write_after_warmup is False
    lv = cfg('iem-learnable-values@readings').model.head
    assert lv.write_after_warmup is False and lv.warmup_value == 'logit'
    # STG: the median split in stages 2 and 3 (kept in --quick), Table 7 values, the token
    for stage in (-1, -2):
        assert cfg('stg-median', stage).model.head.head_threshold == 'median'
        assert cfg('stg-median', stage, quick_indices={}).model.head.head_threshold == 'median'
    assert cfg('stg', quick_indices={}).model.head.head_threshold == 10
    assert cfg('stg-dropout').model.head.dropout_p == 0.3
    assert cfg('stg-gaussian').model.head.noise_std == 1.0
    tok = cfg('stg-lam0.5-tokencls').model.head
    assert tok.token_source == 'classifier' and tok.lam == 0.5
    s1 = cfg('stg-mixft10', 0 + 1)   # chain: ce, mixft10, stage 2, stage 3
    assert s1.model.train_cfg.augments.type == 'Mixup' and s1.train_cfg.max_epochs == 10
    assert s1.optim_wrapper.optimizer.lr == pytest.approx(0.01 * scale)
    sgd = cfg('stg-mixft10-sgd')
    assert sgd.optim_wrapper.optimizer.type == 'SGD' and sgd.model.head.lam == 0.5
    assert sgd.param_scheduler[0].type == 'CosineAnnealingLR'
    assert cfg('stg-mixft10').optim_wrapper.optimizer.type == 'Adam'
    # the CE-stage-1 chain: stage 2 loads the plain CE checkpoint, its SGD median arm keeps
    # both the split and the package's cRT optimiser
    assert ARMS['stg-ce'].stage.parent.parent is CE
    assert ARMS['stg-ce-sgd-crt'].stage.parent is ARMS['stg-ce'].stage.parent
    med = cfg('stg-ce-median-sgd')
    assert med.model.head.head_threshold == 'median' and med.model.head.lam == 0.5
    assert med.optim_wrapper.optimizer.type == 'SGD'
    assert cfg('stg-ce-median-sgd', -2).model.head.head_threshold == 'median'
    # its noise controls: same stage 2 (median), same SGD stage 3, noise instead of STG
    gauss = cfg('stg-ce-median-sgd-gaussian')
    assert ARMS['stg-ce-median-sgd-gaussian'].stage.parent is ARMS['stg-ce-median-sgd'].stage.parent
    assert ARMS['stg-ce-median-sgd-gaussian'].control_of == 'stg-ce-median-sgd'
    assert gauss.model.head.noise_std == 1.0 and gauss.optim_wrapper.optimizer.type == 'SGD'
    assert gauss.model.head.head_threshold == 'median'
    assert cfg('stg-ce-median-sgd-dropout').model.head.dropout_p == 0.3
    assert cfg('stg-ce-tokencls').model.head.token_source == 'classifier'
    assert cfg('stg-ce-sgd-dropout').optim_wrapper.optimizer.type == 'SGD'
    assert cfg('stg-ce-sgd-dropout').model.head.dropout_p == 0.3
    assert ARMS['stg-ce-sgd-gaussian'].control_of == 'stg-ce-sgd'
    # AFA 15-epoch screen: t = 5, the variant's neck also in its cRT, no LBLS in the controls
    afa = cfg('afa-s15-sigmoid', 0)
    assert afa.train_cfg.max_epochs == 15 and afa.model.neck.mask == 'sigmoid'
    assert [h.get('start') for h in afa.custom_hooks if h.type == 'LBLSHook'] == [5]
    assert cfg('afa-s15-sigmoid+crt').model.neck.mask == 'sigmoid'
    ce = cfg('afa-s15-ce', 0)
    assert not ce.model.neck.generate and ce.model.head.all_loss_weight == 0.0
    assert all(h.type != 'LBLSHook' for h in ce.custom_hooks)
    assert cfg('afa-s15-ce+crt').model.neck.attention_addition is False


def test_plan_runs_each_stage_once_per_seed_and_unions_readings(tmp_path):
    arms = select_arms(['ce', 'crt', 'lws', 'taunorm', 'mbj', 'mbj-paper', 'iem-paper', 'iem',
                        'iem-paper@readings'])
    tasks = plan(arms, [0, 1], str(tmp_path))
    keys = [(t.seed, t.stage.key) for t in tasks]
    assert len(keys) == len(set(keys))
    assert keys.count((0, 'ce')) == 1 and keys.count((1, 'ce')) == 1
    by_key = {(t.seed, t.stage.key): t for t in tasks}
    # every two-stage arm loads the one CE stage of its seed
    for key in ('ce/crt', 'ce/lws', 'ce/taunorm', 'ce/mbj-frozen-size50C-eta5', 'ce/mbj-paper'):
        assert by_key[(1, key)].parent is by_key[(1, 'ce')]
    assert {'ce', 'crt', 'lws', 'taunorm', 'mbj'} <= set(by_key[(0, 'ce')].arms)
    assert by_key[(0, 'ce/crt')].arms == ['crt']
    # 'iem-paper' needs the default reading, the probe arm every reading: one run, all readings
    paper = by_key[(0, 'iem-paper')]
    assert paper.readings[0] == 'default' and len(paper.readings) == len(
        ARMS['iem-paper@readings'].stage.readings)
    assert by_key[(0, 'iem-no-rsa')].readings == ['keys+global-only']


@pytest.mark.parametrize('name,args,classes,channels', [
    ('digits-lt', {}, 10, 1), ('fashion-mnist-lt', {'ir': 50}, 10, 1),
    ('cifar100-lt', {'ir': 10}, 100, 3)])
def test_stage_config_takes_the_dataset_and_keeps_the_stage_sampler(tmp_path, name, args,
                                                                    classes, channels):
    spec = get_dataset_spec(name, args)
    cfg = build_stage_config(ARMS['mbj-paper'].stage, spec, 'cpu', 3, str(tmp_path), 'x.pth')
    ds = cfg.train_dataloader.dataset
    assert ds.type == spec.type and ds.imb_factor == spec.kwargs['imb_factor']
    assert cfg.model.head.num_classes == classes
    assert cfg.model.head.memory.size == 5 * classes            # the paper's 5 * C slots
    assert cfg.data_preprocessor.num_classes == classes
    if channels == 1:
        assert cfg.model.backbone.in_channels == 1
    assert cfg.randomness.seed == 3 and cfg.load_from == 'x.pth'
    # lr of the fine-tuning template (0.01 at batch 128) scaled to the preset's batch size
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(
        0.01 * spec.batch_size / 128 * spec.lr_factor)
    crt = build_stage_config(ARMS['crt'].stage, spec, 'paper', 0, str(tmp_path))
    assert crt.train_dataloader.sampler.type == 'ClassBalancedSampler'
    afa = build_stage_config(ARMS['afa-paper'].stage, spec, 'cpu', 0, str(tmp_path))
    side = (spec.image_size + 1) // 2
    assert tuple(afa.model.neck.feat_size) == (side, side)


def _result(val, test, wall=10.0, step=0.1, readings=None):
    readings = readings or {'default': (val, test)}
    return dict(wall_s=wall, step_s=step, readings={
        k: dict(val=dict(top1=v), test=dict(top1=t, many=t + 1, medium=t - 1))
        for k, (v, t) in readings.items()})


def test_summary_chooses_readings_and_methods_on_validation_never_on_test():
    arms = select_arms(['ce', 'taunorm', 'stg-paper', 'stg'])
    s2 = 'stg-stage1/stg-stage2'
    results = {}
    for seed, shift in ((0, 0.0), (1, 2.0)):
        results[(seed, 'ce')] = _result(50 + shift, 60 + shift, wall=100, step=0.2)
        # tau1 wins on val, tau0 on test: tau1 is reported
        results[(seed, 'ce/taunorm')] = _result(0, 0, wall=0, step=None, readings={
            'tau0': (51 + shift, 90), 'tau1': (55 + shift, 70 + shift)})
        results[(seed, 'stg-stage1')] = _result(0, 0, wall=100, step=0.2)
        results[(seed, s2)] = _result(0, 0, wall=20, step=0.1)
        results[(seed, s2 + '/stage3-lam1.5')] = _result(60, 99, wall=5, step=0.05)
        results[(seed, s2 + '/stage3-lam0.5')] = _result(61, 65 + shift, wall=5, step=0.3)
    out = summarize(arms, [0, 1], results)
    tau = out['arms']['taunorm']
    assert tau['reading'] == 'tau1'
    assert tau['test']['top1'] == pytest.approx(71.0)
    assert tau['test']['top1_std'] == pytest.approx(np.std([70, 72], ddof=1))
    assert tau['wall_s'] == pytest.approx(100.0)          # its chain: CE + an eval
    assert out['methods']['STG'] == 'stg'                   # val 61 > 60, test 66 < 99
    assert out['arms']['stg']['chosen_for_method'] and not out['arms']['stg-paper'][
        'chosen_for_method']
    assert out['arms']['stg']['wall_s'] == pytest.approx(125.0)
    assert out['arms']['stg']['step_ratio'] == pytest.approx(1.5)   # 0.3 / CE's 0.2
    assert out['arms']['ce']['step_ratio'] == pytest.approx(1.0)


def test_a_control_with_the_best_validation_score_is_never_its_methods_reading():
    arms = select_arms(['stg-paper', 'stg-crt', 'stg-gaussian', 'stg', 'ce-ft'])
    s2 = 'stg-stage1/stg-stage2'
    results = {(0, 'stg-stage1'): _result(0, 0), (0, s2): _result(0, 0),
               (0, s2 + '/stage3-lam1.5'): _result(60, 60),
               (0, s2 + '/stage3-lam0.5'): _result(58, 58),
               (0, s2 + '/stage3-crt'): _result(70, 70),          # best on val: a control
               (0, s2 + '/stage3-gaussian'): _result(65, 65),
               (0, 'ce'): _result(50, 50), (0, 'ce/ce-ft'): _result(99, 99)}
    out = summarize(arms, [0], results)
    assert out['methods']['STG'] == 'stg-paper'
    assert not out['arms']['stg-crt']['chosen_for_method']
    # MBJ has only its control here: no MBJ reading at all
    assert 'MBJ' not in out['methods'] and not out['arms']['ce-ft']['chosen_for_method']
    # the controls follow the arm they control; ce-ft's arm (mbj-paper) is absent
    assert list(out['arms']) == ['stg-paper', 'stg', 'stg-crt', 'stg-gaussian', 'ce-ft']
    table = markdown_table(out)
    assert '| stg-crt | STG (control of stg) |' in table
    assert '| stg-paper **\\*** |' in table


def _run(argv):
    return load_tool('tools/benchmark/run.py').main(argv)


def _tree(root):
    """``{path: (size, mtime_ns)}`` of every file under ``root``."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            st = os.stat(osp.join(dirpath, name))
            out[osp.join(dirpath, name)] = (st.st_size, st.st_mtime_ns)
    return out


def test_quick_run_end_to_end_shares_stage1_resumes_and_writes_outputs(tmp_path, capsys):
    """A representative subset of the arms (all of them: the slow test below)."""
    argv = ['--dataset', 'digits-lt', '--quick', '--jobs', '0', '--seeds', '0',
            '--methods', 'ce', 'crt', '--work-dir', str(tmp_path)]
    summary = _run(argv)
    assert set(summary['arms']) == {'ce', 'crt'}
    for arm in summary['arms'].values():
        assert 0 <= arm['val']['top1'] <= 100 and 0 <= arm['test']['top1'] <= 100
        assert len(arm['test_per_class']) == 10 and len(arm['train_counts']) == 10
    root = osp.join(str(tmp_path), 'digits-lt-imb_factor25', 'cpu-quick')
    ce = json.load(open(osp.join(root, 's0', 'ce', 'result.json')))
    crt_cfg = open(osp.join(root, 's0', 'ce', 'crt', 'config.py')).read()
    assert ce['checkpoint'] in crt_cfg                      # cRT loads the shared CE run
    for suffix in ('.json', '.md', '_shots.png', '_per_class.png'):
        assert osp.isfile(osp.join(root, 'digits-lt-imb_factor25' + suffix))
    assert summary['failed_stages'] == 0
    # resume: nothing runs again (no stage's file written, no log directory added), same
    # numbers -- judged by the files and the runner's count, not by the wall time
    before = _tree(osp.join(root, 's0'))
    capsys.readouterr()
    again = _run(argv)
    printed = capsys.readouterr().out
    assert again['arms']['crt']['test'] == summary['arms']['crt']['test']
    assert _tree(osp.join(root, 's0')) == before
    assert ', 0 stages run, 0 failed' in printed
    assert printed.count('[skip]') == 2                     # ce and ce/crt


def _synthetic_cifar100(root, per_class_train=24, per_class_test=4):
    rng = np.random.RandomState(0)
    for name, n in (('train', per_class_train), ('test', per_class_test)):
        labels = np.repeat(np.arange(100), n)
        # class-dependent mean colour, so the classes are learnable at all
        data = (rng.randint(0, 64, (len(labels), 3072)) + labels[:, None] * 1.9).astype(np.uint8)
        with open(osp.join(root, name), 'wb') as f:
            pickle.dump({'data': data, 'fine_labels': labels.tolist(),
                         'filenames': [f'{name}_{i}.png' for i in range(len(labels))]}, f)


def test_cifar100_lt_stand_in_runs_through_the_command_without_code_changes(tmp_path):
    data = tmp_path / 'cifar-100-python'
    data.mkdir()
    _synthetic_cifar100(str(data))
    summary = _run(['--dataset', 'cifar100-lt', '--ir', '10', '--data-root', str(data),
                    '--dataset-arg', 'n_max=20', '--dataset-arg', 'val_per_class=2',
                    '--quick', '--jobs', '0', '--methods', 'ce',
                    '--work-dir', str(tmp_path / 'runs')])
    assert summary['dataset'] == 'cifar100-lt-imb_factor10-n_max20-val_per_class2'
    assert len(summary['arms']['ce']['test_per_class']) == 100
    assert summary['arms']['ce']['train_counts'][0] > summary['arms']['ce']['train_counts'][-1]


@pytest.mark.slow
@pytest.mark.long        # 164 stages: .ci/run runs it alone, after the other slow tests
@pytest.mark.timeout(3600)
@pytest.mark.parametrize('dataset', ['digits-lt'])
def test_quick_run_of_every_arm(tmp_path, dataset):
    """Every arm end to end, two stages at a time in the runner's pinned worker processes
    (the parallel path; the other tests run the stages in this process)."""
    summary = _run(['--dataset', dataset, '--quick', '--jobs', '2', '--methods', 'all',
                    '--work-dir', str(tmp_path)])
    assert set(summary['arms']) == set(ARMS) and summary['failed_stages'] == 0


def test_pack_round_trip_holds_the_same_images_in_memory(tmp_path):
    from mmpretrain.registry import DATASETS

    from lt_plugins.datasets.packed_lt import _CACHE
    pack_tool = load_tool('tools/benchmark/pack_dataset.py')
    out = str(tmp_path / 'digits.npz')
    info = pack_tool.main(['--dataset', 'digits-lt', '--out', out])
    assert info['train'] == 481 and info['mib'] < 1
    spec = get_dataset_spec('packed', {'pack_file': out})
    assert (spec.num_classes, spec.in_channels, spec.image_size) == (10, 1, 8)
    assert spec.tag == 'packed-digits'
    assert spec.batch_size == 32 and spec.lr_factor == 2.0      # the preset travels along
    for split in ('train', 'val', 'test'):
        ref = DATASETS.build(dict(type='DigitsLT', split=split, pipeline=[]))
        packed = DATASETS.build(dict(type='PackedLT', pack_file=out, split=split,
                                     pipeline=[]))
        assert len(ref) == len(packed)
        for i in (0, len(ref) // 2, len(ref) - 1):
            a, b = ref.get_data_info(i), packed.get_data_info(i)
            assert a['gt_label'] == b['gt_label']
            np.testing.assert_array_equal(a['img'].reshape(b['img'].shape), b['img'])
    np.testing.assert_array_equal(packed.class_counts, np.bincount(
        [packed.get_data_info(i)['gt_label'] for i in range(len(packed))], minlength=10))
    _CACHE.clear()
    with pytest.raises(ValueError, match='over --max-mib'):
        pack_tool.main(['--dataset', 'digits-lt', '--out', str(tmp_path / 'x.npz'),
                        '--max-mib', '0.01'])
    assert not osp.exists(str(tmp_path / 'x.npz'))


def test_amp_quick_run_on_cpu_keeps_the_memory_bank_in_float32(tmp_path, monkeypatch):
    import torch

    from lt_plugins.engine import fast_path
    monkeypatch.setattr(fast_path, '_cpu_flags', lambda: frozenset())
    with pytest.raises(RuntimeError, match='no native bfloat16'):   # asked for, not there
        _run(['--dataset', 'digits-lt', '--quick', '--jobs', '0', '--amp',
              '--methods', 'mbj-paper', '--work-dir', str(tmp_path)])
    # a CPU with native bfloat16 (simulated; the stages run in this process)
    monkeypatch.setattr(fast_path, '_cpu_flags', lambda: frozenset(['avx512_bf16']))
    summary = _run(['--dataset', 'digits-lt', '--quick', '--jobs', '0', '--amp',
                    '--methods', 'mbj-paper', '--work-dir', str(tmp_path)])
    assert summary['amp'] and summary['channels_last'] and 'mbj-paper' in summary['arms']
    root = osp.join(str(tmp_path), 'digits-lt-imb_factor25', 'cpu-quick', 's0')
    cfg = open(osp.join(root, 'ce', 'mbj-paper', 'config.py')).read()
    assert "fast_path = dict(amp=True, channels_last='auto', compile=False)" in cfg
    log = open(glob.glob(osp.join(root, 'ce', 'mbj-paper', '*', '*.log'))[0]).read()
    assert 'fast path on cpu: bfloat16 autocast on, channels-last on' in log
    state = torch.load(osp.join(root, 'ce', 'mbj-paper', 'epoch_1.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    feats = state['head.memory.feats']
    assert feats.dtype == torch.float32
    assert state['head.memory.valid'].any()                   # written during the epoch


def test_readme_results_table_matches_its_json(tmp_path):
    tool = load_tool('tools/benchmark/readme_tables.py')
    assert tool.check() == []
    # the check can fail: change one number in a copy of the JSON
    readme = open(tool.README).read()
    path = tool.blocks(readme)[0][0]
    table = json.load(open(osp.join(tool.REPO, path)))
    changed = copy.deepcopy(table)
    changed['rows'][0]['cells']['cifar10-lt']['top1'] += 0.01
    assert tool.render(changed) != tool.render(table)
    fake = tmp_path / 'README.md'
    fake.write_text(readme.replace(tool.render(table), tool.render(changed)))
    problems = tool.check(str(fake))      # the edited README against the repository JSON
    assert len(problems) == 1 and path in problems[0]


def test_readme_update_from_a_run_replaces_the_cells_of_its_arms():
    tool = load_tool('tools/benchmark/readme_tables.py')
    table = dict(columns=[dict(key='d', label='D')],
                 rows=[dict(label='cRT', arm='crt', cells={}), dict(label='x', cells={})])
    summary = dict(dataset='d', schedule='cpu', seeds=[0, 1], arms=dict(crt=dict(
        seeds=[0, 1], test=dict(top1=70.123, top1_std=0.5, many=80.0, medium=60.0))))
    assert tool.update_from(table, summary, 'd') == 1
    assert tool.render(table).splitlines()[2] == '| cRT | 70.12 ± 0.50 / 80.00 / 60.00 |'
    assert 'seeds [0, 1]' in table['provenance']['d']
    with pytest.raises(ValueError, match='not a column'):
        tool.update_from(table, summary, 'other')


@pytest.mark.parametrize('schedule', ['cpu', 'paper'])
def test_every_stage_of_every_arm_has_a_template_for_both_schedules(schedule):
    from lt_plugins.benchmark.configs import template_path
    for arm in ARMS.values():
        for stage in arm.stage.chain():
            assert osp.isfile(template_path(stage, schedule)), (arm.name, stage.key)


def test_feature_cache_goes_to_the_frozen_backbone_stages_only(tmp_path):
    spec = get_dataset_spec('digits-lt')
    stg3 = build_stage_config(ARMS['stg'].stage, spec, 'cpu', 0, str(tmp_path),
                              feature_cache=4)
    assert dict(type='FeatureCacheHook', num_views=4) in [dict(h) for h in stg3.custom_hooks]
    stg1 = build_stage_config(ARMS['stg'].stage.chain()[0], spec, 'cpu', 0, str(tmp_path),
                              feature_cache=4)
    assert all(h['type'] != 'FeatureCacheHook' for h in stg1.custom_hooks)


@pytest.mark.parametrize('name,classes', [('fashion-mnist-lt', 10), ('cifar100-lt', 100)])
def test_ride_arms_take_the_dataset_and_chain_mbj_on_the_ride_model(tmp_path, name, classes):
    spec = get_dataset_spec(name, {})
    ride = build_stage_config(ARMS['ride'].stage, spec, 'cpu', 0, str(tmp_path))
    assert ride.model.type == 'RIDEClassifier' and ride.model.head.num_classes == classes
    assert ride.model.backbone.get('in_channels', 3) == spec.in_channels
    assert ride.model.head.loss.type == 'LDAMLoss'
    mbj = ARMS['mbj-ride'].stage
    assert mbj.parent is ARMS['ride'].stage                 # fine-tunes the RIDE checkpoint
    cfg = build_stage_config(mbj, spec, 'cpu', 0, str(tmp_path), 'ride.pth')
    assert cfg.load_from == 'ride.pth'
    assert cfg.model.head.mbj.memory.size == 5 * classes    # the MBJ paper's 5 * C slots
    ldam = build_stage_config(ARMS['ldam-drw'].stage, spec, 'cpu', 0, str(tmp_path))
    assert ldam.model.head.loss.type == 'LDAMLoss'
    assert ldam.model.head.num_classes == classes


@pytest.mark.slow   # ~20 s on the shared 2-core machine
def test_time_feature_cache_times_the_frozen_backbone_stage_live_and_cached(tmp_path):
    summary = _run(['--dataset', 'digits-lt', '--quick', '--jobs', '0', '--methods', 'stg',
                    '--time-feature-cache', '1', '--time-stride', '2',
                    '--work-dir', str(tmp_path)])
    speed = summary['feature_cache_speed']
    key = ARMS['stg'].stage.key
    assert list(speed) == [key]              # the arm's final stage only (not stages 1 / 2)
    res = speed[key]
    # extract_s comes from the FeatureCacheHook of the cached run
    assert res['live_epoch_s'] > 0 and res['cached_epoch_s'] > 0 and res['extract_s'] > 0
    assert res['epochs_in_config'] == 1 and res['subset_stride'] == 2
    assert res['speedup_stage'] == pytest.approx(
        res['live_epoch_s'] / (res['extract_s'] + res['cached_epoch_s']))
    from lt_plugins.benchmark.speed import time_feature_cache
    with pytest.raises(ValueError, match='not cacheable'):
        time_feature_cache(CE, get_dataset_spec('digits-lt'), 'cpu', 0, str(tmp_path), 'x')


def test_new_readings_of_a_finished_stage_are_evaluated_without_training_it_again(tmp_path):
    stage = Stage('ce-topup-test', CE.template,
                  readings={'default': {}, 'again': {'randomness.seed': 7}})
    register_arm(Arm('topup-one', 'CE', stage, readings=('default', )))
    register_arm(Arm('topup-all', 'CE', stage))
    try:
        argv = ['--dataset', 'digits-lt', '--quick', '--jobs', '0', '--work-dir',
                str(tmp_path)]
        first = _run(argv + ['--methods', 'topup-one'])
        root = osp.join(str(tmp_path), 'digits-lt-imb_factor25', 'cpu-quick', 's0',
                        'ce-topup-test')
        result = json.load(open(osp.join(root, 'result.json')))
        assert list(result['readings']) == ['default']
        mtime = osp.getmtime(result['checkpoint'])
        second = _run(argv + ['--methods', 'topup-all'])
        after = json.load(open(osp.join(root, 'result.json')))
        assert list(after['readings']) == ['default', 'again']
        # not trained again: same checkpoint file, same training time and numbers
        assert osp.getmtime(after['checkpoint']) == mtime
        assert after['wall_s'] == result['wall_s']
        assert after['readings']['default'] == result['readings']['default']
        assert after['readings']['again']['test'] == result['readings']['default']['test']
        task = json.load(open(osp.join(root, 'task.json')))
        assert task['train'] is False and list(task['readings']) == ['again']
        assert not osp.exists(osp.join(root, 'result.prev.json'))
        assert second['arms']['topup-all']['test'] == first['arms']['topup-one']['test']
    finally:
        ARMS.pop('topup-one', None)
        ARMS.pop('topup-all', None)
        from lt_plugins.benchmark.arms import _STAGES
        _STAGES.pop('ce-topup-test', None)


def test_mbj_probe_reads_the_ce_checkpoint_and_never_chooses_a_control(tmp_path):
    from lt_plugins.benchmark.probe import PROBE_READINGS, summarize_probe
    tool = load_tool('tools/benchmark/run.py')
    assert tool.parse_args(['--mbj-probe']).mbj_probe == []        # all readings
    summary = tool.main(['--dataset', 'digits-lt', '--quick', '--jobs', '0', '--methods',
                         'ce', '--mbj-probe', 'ce-ft', 'crt', 'paper', 'size50C-eta5',
                         '--work-dir', str(tmp_path)])
    probe = summary['mbj_probe']
    assert probe['checkpoints']['0'].endswith(osp.join('s0', 'ce', 'epoch_1.pth'))
    assert list(probe['readings']) == ['ce-ft', 'crt', 'paper', 'size50C-eta5']
    assert probe['chosen_on_val'] in ('paper', 'size50C-eta5')
    for entry in probe['readings'].values():
        assert 0 <= entry['test']['top1'] <= 100 and entry['seeds'] == [0]
    assert len(probe['class_counts']) == 10 and probe['extract_s'][0] > 0
    # choice on val among the non-controls, even when a control scores higher
    run = dict(seed=0, wall_s=1.0)
    runs = {'crt': [dict(run, val=dict(top1=90.0), test=dict(top1=90.0))],
            'paper': [dict(run, val=dict(top1=60.0), test=dict(top1=99.0))],
            'beta1': [dict(run, val=dict(top1=70.0), test=dict(top1=10.0))]}
    assert summarize_probe(runs)['chosen_on_val'] == 'beta1'
    assert PROBE_READINGS['crt']['control'] and PROBE_READINGS['ce-ft']['control']
    with pytest.raises(ValueError, match='--mbj-probe readings'):
        from lt_plugins.benchmark.probe import run_probe
        run_probe(get_dataset_spec('digits-lt'), 'cpu', {0: 'x.pth'}, str(tmp_path), ['nope'])


def test_an_interrupted_stage_resumes_from_its_last_epoch_and_ends_where_a_whole_run_does(
        tmp_path, monkeypatch):
    """A stage killed after epoch 2 of 3 resumes from ``epoch_2.pth`` (same config) and ends
    with the weights of an uninterrupted run; another config or ``resume: false`` starts
    over."""
    import torch
    from mmengine.hooks import Hook
    from mmpretrain.registry import HOOKS

    from lt_plugins.benchmark.runner import quick_indices
    from lt_plugins.benchmark.worker import interrupted_checkpoint, run_task

    @HOOKS.register_module(name='_TestCrashAfterEpoch', force=True)
    class _Crash(Hook):
        priority = 'LOWEST'   # after the CheckpointHook has saved the epoch

        def after_train_epoch(self, runner):
            if runner.epoch + 1 == 2 and os.environ.get('LT_TEST_CRASH'):   # 2nd epoch
                raise KeyboardInterrupt('simulated kill')

    spec = get_dataset_spec('digits-lt')
    indices = quick_indices(spec)

    def task(name, resume=True, epochs=3):
        work = osp.join(str(tmp_path), name)
        cfg = build_stage_config(CE, spec, 'cpu', 0, work, quick_indices=indices)
        cfg.train_cfg.max_epochs = epochs
        cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='_TestCrashAfterEpoch')]
        os.makedirs(work, exist_ok=True)
        cfg.dump(osp.join(work, 'config.py'))
        return dict(stage='ce', seed=0, train=True, config=osp.join(work, 'config.py'),
                    readings={'default': {}}, previous=None, resume=resume,
                    result=osp.join(work, 'result.json'))

    def weights(name):
        sd = torch.load(osp.join(str(tmp_path), name, 'epoch_3.pth'), map_location='cpu',
                        weights_only=False)
        return sd['state_dict'], sd['meta']

    whole = run_task(task('whole'))
    assert 'resumed_from_epoch' not in whole
    monkeypatch.setenv('LT_TEST_CRASH', '1')
    with pytest.raises(KeyboardInterrupt):
        run_task(task('cut'))
    monkeypatch.delenv('LT_TEST_CRASH')
    cut = osp.join(str(tmp_path), 'cut')
    assert interrupted_checkpoint(osp.join(cut, 'config.py'), 3).endswith('epoch_2.pth')
    assert interrupted_checkpoint(osp.join(cut, 'config.py'), 2) is None   # finished
    resumed = run_task(task('cut'))
    assert resumed['resumed_from_epoch'] == 2
    (a, meta_a), (b, meta_b) = weights('whole'), weights('cut')
    assert meta_a['epoch'] == meta_b['epoch'] == 3 and meta_a['iter'] == meta_b['iter']
    assert a.keys() == b.keys()
    # the second process trained epoch 3 only, from epoch 2's checkpoint (the augmentations'
    # random draws are not replayed, so the weights are not bit-equal to a whole run's)
    logs = sorted(glob.glob(osp.join(cut, '2*', '2*.log')))
    assert len(logs) == 2
    second = open(logs[1]).read()
    assert 'resuming the interrupted run' in second and 'Epoch(train) [3]' in second
    assert 'Epoch(train) [1]' not in second and 'Epoch(train) [2]' not in second
    # a changed config (here: 4 epochs) or --force (resume: false) starts from scratch
    monkeypatch.setenv('LT_TEST_CRASH', '1')
    with pytest.raises(KeyboardInterrupt):
        run_task(task('cut2'))
    monkeypatch.delenv('LT_TEST_CRASH')
    cut2 = task('cut2', epochs=4)
    assert interrupted_checkpoint(cut2['config'], 4) is None
    assert 'resumed_from_epoch' not in run_task(task('cut2', resume=False))


def test_afa_crt_stages_repeat_the_neck_switches_of_their_stage1():
    """The cRT stage after an AFA variant runs the same (frozen, eval-mode) neck: a Table VII
    "w/o AttAdd" model re-trained with attention addition back on would test another model."""
    crt = ARMS['afa-noattadd+crt'].stage
    assert crt.overrides == {'model.neck.attention_addition': False}
    assert crt.parent.overrides == {'model.neck.attention_addition': False}
    assert ARMS['afa-nogen+crt'].stage.overrides == {}       # generation is off in eval anyway
    assert ARMS['afa-s15-ce+crt'].stage.overrides == {'model.neck.attention_addition': False}
