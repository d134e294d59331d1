"""tools/zoo_release.py and tools/zoo_check.py: a quick DigitsLT benchmark run's CE and cRT
stages released into a temporary zoo (metafile fields, sha256, weights-only loading), the check
reproducing the run's numbers exactly, and the refusals (tampered files, overwrites, sizes)."""
import json
import os
import os.path as osp
import shutil

import pytest
import torch
import yaml

import lt_plugins  # noqa: F401
from lt_plugins.compat import load_from_local
from tests.test_tools import ROOT, load_tool

SHARED_CIFAR10 = osp.join(ROOT, '..', 'shared', 'data', 'cifar-10-batches-py')
SHOT = {'top1': 'Top 1 Accuracy', 'many': 'Many-shot Top 1 Accuracy',
        'medium': 'Medium-shot Top 1 Accuracy', 'few': 'Few-shot Top 1 Accuracy'}


@pytest.fixture(scope='module')
def check():
    return load_tool('tools/zoo_check.py')


@pytest.fixture(scope='module')
def release(check):
    return check.zoo_release        # the module zoo_check uses (one ZooError class)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """One quick DigitsLT run of the CE and cRT stages (the benchmark's own command)."""
    work = str(tmp_path_factory.mktemp('bench'))
    load_tool('tools/benchmark/run.py').main(['--dataset', 'digits-lt', '--quick', '--jobs',
                                              '0', '--methods', 'ce', 'crt', '--work-dir', work])
    root = osp.join(work, 'digits-lt-imb_factor25', 'cpu-quick', 's0')
    return {'ce': osp.join(root, 'ce'), 'crt': osp.join(root, 'ce', 'crt')}


@pytest.fixture(scope='module')
def zoo(run, release, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('zoo'))
    with open(osp.join(path, 'README.md'), 'w') as f:
        f.write('test zoo\n')
    entries = {k: release.release_stage(d, path, log=lambda s: None) for k, d in run.items()}
    return dict(path=path, entries=entries)


def result_of(stage_dir: str) -> dict:
    with open(osp.join(stage_dir, 'result.json')) as f:
        return json.load(f)


def metafile(path: str) -> dict:
    with open(osp.join(path, 'metafile.yml')) as f:
        return yaml.safe_load(f)


def copy_zoo(zoo: dict, dst) -> str:
    out = str(dst / 'zoo')
    shutil.copytree(zoo['path'], out)
    return out


def test_release_writes_the_metafile_entry_of_each_stage(run, zoo, release):
    data = metafile(zoo['path'])
    assert [c['Name'] for c in data['Collections']] == ['lt_plugins DigitsLT IR25 ResNet-32']
    assert data['Collections'][0]['README'] == 'README.md'
    models = {m['Name']: m for m in data['Models']}
    assert set(models) == {'ce_resnet32-cifar_digits-lt-ir25_cpu-quick-s0',
                           'ce+crt_resnet32-cifar_digits-lt-ir25_cpu-quick-s0'}
    for key, stage_dir in run.items():
        result = result_of(stage_dir)
        entry = models[zoo['entries'][key]['Name']]
        assert entry == zoo['entries'][key]
        assert entry['In Collection'] == 'lt_plugins DigitsLT IR25 ResNet-32'
        meta = entry['Metadata']
        assert meta['Training Data'] == 'DigitsLT IR25 (subset)'      # --quick: indices
        assert meta['Training Pipeline'] == {'ce': 'ce', 'crt': 'ce/crt'}[key]
        assert (meta['Epochs'], meta['Seed'], meta['Schedule']) == (1, 0, 'cpu-quick')
        assert meta['Batch Size'] == 32 and meta['Reading'] == 'default'
        assert meta['Commit'] == result['commit'] and meta['Commit Recorded At'] == 'training'
        assert len(meta['Commit'].split('+')[0]) == 40
        assert meta['Wall Time (s)'] == round(result['wall_s'], 1)
        walls = result['wall_s'] + (result_of(run['ce'])['wall_s'] if key == 'crt' else 0)
        assert meta['Pipeline Wall Time (s)'] == round(walls, 1)
        assert meta['Parameters'] == 463866 and meta['Architecture'] == ['ResNet-32']
        assert meta['Training Fast Path'] == dict(amp='auto', channels_last='auto',
                                                  compile=False)
        # one Results entry per split, the reading's numbers rounded to 2 decimals
        reading = result['readings']['default']
        assert [r['Dataset'] for r in entry['Results']] == ['DigitsLT IR25 (subset) test',
                                                            'DigitsLT IR25 (subset) val']
        for res, split in zip(entry['Results'], ('test', 'val')):
            assert res['Task'] == 'Image Classification'
            assert res['Metrics'] == {SHOT[k]: round(v, 2) for k, v in reading[split].items()}
            assert 'Many-shot Top 1 Accuracy' not in res['Metrics']   # no class > 100 images
        # paths relative to the metafile; the sha256 of the file
        weights = osp.join(zoo['path'], entry['Weights'])
        assert entry['Weights'] == f'{entry["Name"]}/{entry["Name"]}.safetensors'
        assert entry['Config'] == f'{entry["Name"]}/{entry["Name"]}.py'
        assert entry['Weights SHA256'] == release.sha256_file(weights)
        assert len(entry['Weights SHA256']) == 64


def test_released_config_is_self_contained(zoo, run):
    from mmengine.config import Config
    entry = zoo['entries']['crt']
    text = open(osp.join(zoo['path'], entry['Config'])).read()
    cfg = Config.fromfile(osp.join(zoo['path'], entry['Config']))
    assert '_base_' not in text and cfg.load_from is None and cfg.resume is False
    assert 'work_dir' not in cfg and 'experiment_name' not in cfg
    assert osp.dirname(run['ce']) not in text                   # no path of the run
    assert f'python tools/test.py ZOO/{entry["Config"]} ZOO/{entry["Weights"]}' in text
    trained = Config.fromfile(osp.join(run['crt'], 'config.py'))
    assert cfg.model == trained.model
    assert cfg.test_dataloader.dataset == trained.test_dataloader.dataset   # the same images


def test_released_weights_load_weights_only_and_equal_the_checkpoint(zoo, run):
    for key, stage_dir in run.items():
        released = load_from_local(osp.join(zoo['path'], zoo['entries'][key]['Weights']))
        original = load_from_local(result_of(stage_dir)['checkpoint'])
        assert set(released) == {'state_dict', 'meta'}
        assert set(released['state_dict']) == set(original['state_dict'])
        for name, value in released['state_dict'].items():
            torch.testing.assert_close(value, original['state_dict'][name], rtol=0, atol=0)
        assert released['meta']['lt_class_counts'] == original['meta']['lt_class_counts']


def test_check_reproduces_the_run_numbers_exactly(zoo, run, check, capsys):
    reports = check.main(['--zoo', zoo['path'], '--tolerance', '0'])
    assert [r['ok'] for r in reports] == [True, True]
    for report, key in zip(reports, ('ce', 'crt')):
        assert report['name'] == zoo['entries'][key]['Name']
        reading = result_of(run[key])['readings']['default']
        rows = {(r['split'], r['metric']): r['reproduced'] for r in report['rows']}
        # every number of the run, unrounded, equal to the benchmark worker's evaluation
        assert rows == {(s, SHOT[k]): v for s in ('test', 'val') for k, v in reading[s].items()}
    out = capsys.readouterr().out
    assert '2/2 entries reproduce their metafile' in out


def test_tampered_weights_or_metafile_numbers_fail_the_check(zoo, check, tmp_path, capsys):
    path = copy_zoo(zoo, tmp_path)
    name = zoo['entries']['crt']['Name']
    weights = osp.join(path, zoo['entries']['crt']['Weights'])
    with open(weights, 'r+b') as f:      # one byte of a tensor changed
        f.seek(-5, os.SEEK_END)
        byte = f.read(1)
        f.seek(-5, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(SystemExit) as exc:
        check.main(['--zoo', path, name])
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert f'FAIL {name}' in out and 'the file was changed or replaced' in out
    # a metafile number off by one point: both numbers printed, exit 1 (test split only)
    data = metafile(path)
    ce = next(m for m in data['Models'] if m['Name'] == zoo['entries']['ce']['Name'])
    ce['Results'] = ce['Results'][:1]
    wrong = ce['Results'][0]['Metrics']['Top 1 Accuracy'] + 1.0
    ce['Results'][0]['Metrics']['Top 1 Accuracy'] = wrong
    with open(osp.join(path, 'metafile.yml'), 'w') as f:
        yaml.safe_dump(data, f, sort_keys=False)
    with pytest.raises(SystemExit) as exc:
        check.main(['--zoo', path, ce['Name']])
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert (f'test Top 1 Accuracy: metafile {wrong:.2f}, reproduced {wrong - 1:.2f} '
            '(difference -1.00 > tolerance 0.01)') in out
    with pytest.raises(SystemExit, match='has no entries'):
        check.main(['--zoo', path, 'no-such-model'])


def test_overwrite_with_other_weights_needs_force(zoo, run, release, tmp_path):
    path = copy_zoo(zoo, tmp_path)
    before = metafile(path)
    ce = zoo['entries']['ce']
    # the same stage again: the same bytes, the entry stays one entry
    again = release.release_stage(run['ce'], path, log=lambda s: None)
    assert again['Weights SHA256'] == ce['Weights SHA256']
    assert metafile(path) == before
    # cRT's weights under CE's name: refused, nothing changed
    crt = result_of(run['crt'])
    metrics = tmp_path / 'metrics.json'
    metrics.write_text(json.dumps({'shot/top1': 10.0, 'shot/few': 16.67}))   # test.py --out
    argv = ['--config', osp.join(run['crt'], 'config.py'), '--checkpoint', crt['checkpoint'],
            '--metrics', str(metrics), '--name', ce['Name'], '--zoo', path, '--commit', 'abc']
    with pytest.raises(SystemExit, match='already holds .* with other weights .* --force'):
        release.main(argv)
    assert metafile(path) == before
    assert release.sha256_file(osp.join(path, ce['Weights'])) == ce['Weights SHA256']
    # --force replaces it in place
    entry = release.main(argv + ['--force'])
    data = metafile(path)
    assert [m['Name'] for m in data['Models']] == [m['Name'] for m in before['Models']]
    assert entry['Weights SHA256'] == zoo['entries']['crt']['Weights SHA256']
    assert entry['Weights SHA256'] == release.sha256_file(osp.join(path, ce['Weights']))
    assert entry['Metadata']['Commit'] == 'abc' and entry['Metadata']['Seed'] == 0
    assert entry['Results'] == [{'Task': 'Image Classification',
                                 'Dataset': 'DigitsLT IR25 (subset) test',
                                 'Metrics': {'Top 1 Accuracy': 10.0,
                                             'Few-shot Top 1 Accuracy': 16.67}}]
    assert data['Models'][0] == entry


def test_size_limits_refuse_and_leave_the_zoo_unchanged(zoo, run, release, tmp_path):
    path = copy_zoo(zoo, tmp_path)
    before = sorted(os.listdir(path))
    with pytest.raises(release.ZooError, match=r'1\.80 MiB, over the per-file limit of 1 MiB'):
        release.release_stage(run['ce'], path, name='x', max_file_mb=1)
    # two 1.8 MiB entries are there: a third would pass 5 MiB
    with pytest.raises(release.ZooError, match=r'would hold 5\.4\d MiB, over its limit of 5'):
        release.release_stage(run['ce'], path, name='x', max_zoo_mb=5)
    assert sorted(os.listdir(path)) == before      # no entry, no leftover temporary folder
    with pytest.raises(release.ZooError, match='one path component'):
        release.release_stage(run['ce'], path, name='../x')


def test_metafile_follows_the_model_index_format(zoo):
    modelindex = pytest.importorskip('modelindex.load_model_index')
    index = modelindex.load(osp.join(zoo['path'], 'metafile.yml'))
    index.build_models_with_collections()
    assert index.check(silent=True) == []
    model = index.models[0]
    assert model.in_collection == 'lt_plugins DigitsLT IR25 ResNet-32'
    assert model.results[0].task == 'Image Classification'
    assert model.metadata.epochs == 1


def test_public_config_puts_back_the_default_data_root(release, tmp_path):
    cfg_path = tmp_path / 'cfg.py'
    cfg_path.write_text(
        "data_root = 'data/cifar10'\n"
        "train_dataloader = dict(dataset=dict(type='ClassBalancedDataset', oversample_thr=0.1,"
        " dataset=dict(type='CIFAR10LT', data_root='/mnt/x/cifar', split='train',"
        " pipeline=[dict(type='PackInputs')])))\n"
        "val_dataloader = dict(dataset=dict(type='PackedLT', pack_file='/mnt/p/c10.npz',"
        " data_root='/mnt/p', split='val'))\n"
        "test_dataloader = dict(dataset=dict(type='CIFAR10LT', data_root='/mnt/x/cifar',"
        " split='test', imb_factor=100))\n"
        "load_from = '/mnt/w/epoch_200.pth'\nwork_dir = '/mnt/w'\n"
        "fast_path = dict(amp=True, channels_last='auto', compile=True)\n"
        "model = dict(type='ImageClassifier', backbone=dict(type='TIMMBackbone',"
        " model_name='resnet32_cifar'),"
        " init_cfg=dict(type='Pretrained', checkpoint='/mnt/q.pth'))\n")
    cfg, warnings = release.public_config(str(cfg_path), {'model.head': dict(tau=1.0)})
    assert cfg.train_dataloader.dataset.dataset.data_root == 'data/cifar10'
    assert cfg.test_dataloader.dataset.data_root == 'data/cifar10'
    assert cfg.val_dataloader.dataset.pack_file == 'c10.npz'
    assert 'data_root' not in cfg.val_dataloader.dataset
    assert cfg.load_from is None and 'work_dir' not in cfg and cfg.model.head.tau == 1.0
    assert warnings == ["model.init_cfg.checkpoint = '/mnt/q.pth'"]
    assert cfg.fast_path == dict(amp='auto', channels_last='auto', compile=False)
    assert release.dataset_name(cfg) == 'CIFAR-10-LT IR100'
    assert release.backbone_name(cfg) == 'ResNet-32'


def test_committed_zoo_is_consistent(release):
    """model_zoo/: a valid metafile, and every entry's files present with their sha256
    (reproducing the numbers needs the datasets: the slow test below)."""
    zoo = osp.join(ROOT, 'model_zoo')
    data = release.load_metafile(zoo)
    assert 'lt_plugins CIFAR-10-LT IR100 ResNet-32' in [c['Name'] for c in data['Collections']]
    for entry in data['Models']:
        assert entry['In Collection'] in [c['Name'] for c in data['Collections']]
        assert osp.isfile(osp.join(zoo, entry['Config']))
        weights = osp.join(zoo, entry['Weights'])
        assert release.sha256_file(weights) == entry['Weights SHA256'], entry['Name']
        assert osp.getsize(weights) <= release.MAX_FILE_MB * 2**20
    assert release._zoo_bytes(zoo, []) <= release.MAX_ZOO_MB * 2**20


@pytest.mark.slow
def test_committed_zoo_reproduces_its_numbers_on_cifar10(check):
    """Every committed entry reproduces its metafile numbers (CIFAR-10 in ../shared/data)."""
    data = check.zoo_release.load_metafile(osp.join(ROOT, 'model_zoo'))
    if not data['Models']:
        pytest.skip('model_zoo/ has no released models yet')
    if not osp.isdir(SHARED_CIFAR10):
        pytest.skip(f'no CIFAR-10 copy at {SHARED_CIFAR10}')
    reports = check.check_zoo(osp.join(ROOT, 'model_zoo'), data_root=osp.dirname(SHARED_CIFAR10))
    assert all(r['ok'] for r in reports), [e for r in reports for e in r['errors']]


@pytest.mark.slow
def test_a_cifar10_quick_stage_releases_and_reproduces(tmp_path, check):
    """The CIFAR-10-LT path: --data-root on the run, the default data_root in the released
    config, --data-root on the check."""
    if not osp.isdir(SHARED_CIFAR10):
        pytest.skip(f'no CIFAR-10 copy at {SHARED_CIFAR10}')
    load_tool('tools/benchmark/run.py').main([
        '--dataset', 'cifar10-lt', '--quick', '--jobs', '0', '--methods', 'ce',
        '--data-root', osp.dirname(SHARED_CIFAR10), '--work-dir', str(tmp_path / 'bench')])
    stage = tmp_path / 'bench' / 'cifar10-lt-imb_factor100' / 'cpu-quick' / 's0' / 'ce'
    entry = check.zoo_release.release_stage(str(stage), str(tmp_path / 'zoo'))
    assert entry['In Collection'] == 'lt_plugins CIFAR-10-LT IR100 ResNet-32'
    text = open(tmp_path / 'zoo' / entry['Config']).read()
    assert "data_root='data/cifar10'" in text and osp.dirname(SHARED_CIFAR10) not in text
    reports = check.check_zoo(str(tmp_path / 'zoo'), data_root=osp.dirname(SHARED_CIFAR10),
                              tolerance=0)
    assert reports[0]['ok'], reports[0]['errors']
    reading = result_of(str(stage))['readings']['default']
    assert {(r['split'], r['metric']): r['reproduced'] for r in reports[0]['rows']} == {
        (s, SHOT[k]): v for s in ('test', 'val') for k, v in reading[s].items()}


@pytest.mark.slow
def test_a_post_hoc_reading_releases_its_settings_with_the_weights_it_reads(tmp_path, check):
    """tau-norm: no training, five readings; the released config carries the chosen tau and
    the weights are the CE model's as the tau-norm model reads them."""
    release = check.zoo_release
    load_tool('tools/benchmark/run.py').main(['--dataset', 'digits-lt', '--quick', '--jobs', '0',
                                              '--methods', 'taunorm', '--work-dir',
                                              str(tmp_path / 'bench')])
    root = tmp_path / 'bench' / 'digits-lt-imb_factor25' / 'cpu-quick' / 's0' / 'ce'
    zoo = str(tmp_path / 'zoo')
    with pytest.raises(release.ZooError, match=r"readings \['tau0', 'tau0.5', .*--reading"):
        release.release_stage(str(root / 'taunorm'), zoo)
    ce = release.release_stage(str(root), zoo)
    os.remove(root / 'taunorm' / 'task.json')       # the overrides then come from the arms
    entry = release.release_stage(str(root / 'taunorm'), zoo, reading='tau1.5')
    assert entry['Name'] == 'ce+taunorm_resnet32-cifar_digits-lt-ir25_cpu-quick-s0_tau1.5'
    weights = {k: load_from_local(osp.join(zoo, e['Weights']))['state_dict']
               for k, e in (('ce', ce), ('tau', entry))}
    # the CE tensors, plus the marker of a decoupled stage the tau-norm model adds on loading
    assert set(weights['tau']) == set(weights['ce']) | {'decoupled_stage'}
    for key, value in weights['ce'].items():
        torch.testing.assert_close(weights['tau'][key], value, rtol=0, atol=0)
    assert entry['Metadata']['Epochs'] == 1 and entry['Metadata']['Reading'] == 'tau1.5'
    from mmengine.config import Config
    assert Config.fromfile(osp.join(zoo, entry['Config'])).model.head.tau == 1.5
    reports = check.check_zoo(zoo, [entry['Name']], tolerance=0)
    assert reports[0]['ok'], reports[0]['errors']
    reading = result_of(str(root / 'taunorm'))['readings']['tau1.5']
    assert {(r['split'], r['metric']): r['reproduced'] for r in reports[0]['rows']} == {
        (s, SHOT[k]): v for s in ('test', 'val') for k, v in reading[s].items()}
