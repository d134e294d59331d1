"""End-to-end runs through the command-line tools, as a user runs them (DigitsLT, CPU)."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.dist_utils import run_with_free_port

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CE_DIGITS = osp.join(REPO, 'configs/baselines/ce_resnet32-cifar_1xb32_digits-lt.py')


def deterministic_config(tmp_path) -> str:
    """The DigitsLT CE config without random crops, so a resumed run can match bit for bit."""
    path = tmp_path / 'deterministic_digits.py'
    path.write_text(f"_base_ = ['{CE_DIGITS}']\n"
                    "train_dataloader = dict(dataset=dict(pipeline=[dict(type='PackInputs')]))\n"
                    "default_hooks = dict(checkpoint=dict(interval=1))\n")
    return str(path)


def run_tool(*args: str, timeout: int = 300) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def params_of(checkpoint: str) -> dict:
    return torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']


def test_train_resume_test_cycle(tmp_path):
    config = deterministic_config(tmp_path)
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    log = run_tool('tools/train.py', config, '--work-dir', straight, '--no-validate',
                   '--cfg-options', 'train_cfg.max_epochs=2')
    # the quick start's filter condenses the real log to one line per epoch
    progress = subprocess.run(['awk', '-v', 'label=ce', '-f', 'tools/log_progress.awk'],
                              input=log, cwd=REPO, capture_output=True, text=True).stdout
    assert [line.split('  ')[0] for line in progress.splitlines()] == [
        '[ce] epoch 1/2', '[ce] epoch 2/2']
    run_tool('tools/train.py', config, '--work-dir', resumed, '--no-validate',
             '--cfg-options', 'train_cfg.max_epochs=1')
    # --resume without a path continues from the latest checkpoint in the work dir.
    run_tool('tools/train.py', config, '--work-dir', resumed, '--no-validate', '--resume',
             '--cfg-options', 'train_cfg.max_epochs=2')

    expected, actual = params_of(f'{straight}/epoch_2.pth'), params_of(f'{resumed}/epoch_2.pth')
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)
    meta = torch.load(f'{resumed}/epoch_2.pth', map_location='cpu', weights_only=False)['meta']
    assert meta['lt_class_counts'] == [150, 104, 73, 51, 35, 25, 17, 12, 8, 6]

    out = str(tmp_path / 'test.json')
    printed = run_tool('tools/test.py', CE_DIGITS, f'{resumed}/epoch_2.pth', '--work-dir',
                       str(tmp_path / 'test'), '--out', out)
    assert '| shot |' in printed
    metrics = json.load(open(out))

    # The same numbers computed here from the checkpoint and the test split.
    import lt_plugins  # noqa: F401
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS
    cfg = Config.fromfile(CE_DIGITS)
    cfg.model.data_preprocessor = cfg.data_preprocessor
    model = MODELS.build(cfg.model)
    load_checkpoint(model, f'{resumed}/epoch_2.pth', map_location='cpu')
    model.eval()
    test_set = DATASETS.build(dict(type='DigitsLT', split='test'))
    images = torch.stack([torch.as_tensor(d['img']).permute(2, 0, 1) for d in
                          (test_set.get_data_info(i) for i in range(len(test_set)))])
    labels = torch.as_tensor(test_set.get_gt_labels())
    with torch.no_grad():
        logits = model(model.data_preprocessor({'inputs': images})['inputs'], mode='tensor')
    correct = (logits.argmax(1) == labels).float()
    # tools/test.py ran other batch sizes, whose logits differ by round-off (~1e-6): an image
    # whose two best logits are closer than 1e-4 could go either way there, so the numbers
    # are checked between counting all such images wrong and all right (usually none)
    top2 = logits.topk(2, dim=1).values
    undecided = (top2[:, 0] - top2[:, 1]) < 1e-4 * top2[:, 0].abs().clamp_min(1)
    counts = np.array([150, 104, 73, 51, 35, 25, 17, 12, 8, 6])
    for key, classes in (('top1', None), ('many', counts > 100),
                         ('medium', (counts >= 20) & (counts <= 100)), ('few', counts < 20)):
        bounds = []
        for tie_value in (0.0, 1.0):
            right = torch.where(undecided, torch.full_like(correct, tie_value), correct)
            if classes is None:
                bounds.append(100 * right.mean().item())
            else:
                per_class = np.array([right[labels == c].mean().item() for c in range(10)])
                bounds.append(100 * per_class[classes].mean())
        assert bounds[0] - 1e-4 <= metrics[f'shot/{key}'] <= bounds[1] + 1e-4, (key, bounds)


def test_dist_train_two_cpu_processes_end_identical(tmp_path):
    """tools/dist_train.sh CONFIG 2 on a CPU-only machine: gloo, both ranks end identical."""
    config = tmp_path / 'ddp_digits.py'
    config.write_text(
        f"_base_ = ['{CE_DIGITS}']\n"
        "custom_imports = dict(imports=['lt_plugins', 'tests.test_tools.rank_state_hook'],\n"
        "                      allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='ClassCountsHook'), dict(type='RankStateDumpHook')]\n"
        "train_cfg = dict(max_epochs=1)\n")
    work = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('PYTHON', None)
    if not osp.isfile(osp.join(REPO, '.venv', 'bin', 'python')):
        env['PYTHON'] = sys.executable  # no install.sh venv here: name the interpreter
    # otherwise the script finds .venv/bin/python itself (no `python` on PATH needed);
    # PORT: a free one, another on a clash
    proc = run_with_free_port(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir',
                               str(work), '--no-validate'], env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rank0 = torch.load(work / 'rank0_params.pth', weights_only=True)
    rank1 = torch.load(work / 'rank1_params.pth', weights_only=True)
    assert rank0.keys() == rank1.keys() and len(rank0) > 0
    for key in rank0:
        torch.testing.assert_close(rank1[key], rank0[key], rtol=0, atol=0, msg=key)
    # A real 2-process run: each rank saw half of the 481 images (241 each, in 7 full
    # batches of 32: the config drops the last, partial one).
    log = open(next(work.glob('*/*.log'))).read()
    assert 'Distributed training: True' in log and 'Epoch(train) [1][5/7]' in log
    assert 'Distributed backend: gloo' in log  # what ran, not the config's nccl


def test_mmpretrain_own_train_script_with_custom_imports(tmp_path):
    """MMPretrain's tools/train.py forces persistent_workers=True; num_workers=0 must work."""
    import mmpretrain
    script = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'train.py')
    if not osp.isfile(script):
        pytest.skip('this MMPretrain install does not ship tools/train.py')
    work = str(tmp_path / 'mmpretrain_tool')
    run_tool(script, CE_DIGITS, '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1',
             'train_cfg.val_interval=1')
    checkpoint = torch.load(f'{work}/epoch_1.pth', map_location='cpu', weights_only=False)
    assert checkpoint['meta']['lt_class_counts'][0] == 150
