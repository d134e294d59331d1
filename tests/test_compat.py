"""Fixes applied by ``import lt_plugins`` (lt_plugins.compat), each scoped to where it breaks."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import CheckpointLoader, Runner, load_checkpoint

import lt_plugins  # noqa: F401  (applies the fixes)
from lt_plugins.engine.hooks import ClassCountsHook


# -- 0. custom_imports alone applies every fix (MMPretrain's own tools/train.py) ----------------
FRESH_PROCESS_CHECK = """
import os, sys
from mmengine.config import Config
assert 'lt_plugins' not in sys.modules
cfg = Config.fromfile(sys.argv[1])  # imports custom_imports, as MMPretrain's tools do
assert 'lt_plugins' in sys.modules
import torch
import mmengine.dist.utils as dist_utils
from mmengine.runner import CheckpointLoader, Runner
from mmpretrain.evaluation.metrics import retrieval
assert CheckpointLoader._get_checkpoint_loader('/x/epoch_1.pth').__module__ == 'lt_plugins.compat'
assert Runner.build_dataloader._lt_plugins_patched
assert Runner.register_hooks._lt_plugins_patched
assert dist_utils._init_dist_pytorch._lt_plugins_patched
assert hasattr(retrieval.np, 'in1d')
assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
print('FIXES-OK')
"""


def test_custom_imports_alone_applies_fixes():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = os.path.join(root, 'configs', 'baselines', 'ce_resnet32-cifar_1xb32_digits-lt.py')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=root)
    out = subprocess.run([sys.executable, '-c', FRESH_PROCESS_CHECK, config], env=env,
                         cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'FIXES-OK' in out.stdout


# -- 1. checkpoints with non-tensor objects -------------------------------------------------
@pytest.fixture()
def rich_checkpoint(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    torch.save({'state_dict': {'weight': torch.arange(6.).reshape(3, 2), 'bias': torch.ones(3)},
                'meta': {'seed': np.int64(3), 'counts': np.arange(4), 'lr': np.float64(0.1)},
                'message_hub': {'log_scalars': {'loss': HistoryBuffer([2.0, 1.0], [1, 1])}}},
               path)
    return path


def test_checkpoint_loader_accepts_mmengine_checkpoints(rich_checkpoint):
    ckpt = CheckpointLoader.load_checkpoint(rich_checkpoint, map_location='cpu')
    np.testing.assert_array_equal(ckpt['meta']['counts'], np.arange(4))
    assert ckpt['meta']['seed'] == 3 and ckpt['meta']['lr'] == 0.1
    assert ckpt['message_hub']['log_scalars']['loss'].statistics('min') == 1.0
    model = nn.Linear(2, 3)
    load_checkpoint(model, rich_checkpoint, map_location='cpu')  # the Runner's load_from path
    torch.testing.assert_close(model.weight, torch.arange(6.).reshape(3, 2))


def test_torch_load_default_unchanged(rich_checkpoint):
    # the fix is scoped to mmengine's loader: torch.load still refuses by default
    with pytest.raises(pickle.UnpicklingError, match='weights_only'):
        torch.load(rich_checkpoint)
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ


def test_checkpoint_loader_log_names_local_backend(rich_checkpoint):
    # mmengine logs 'Loads checkpoint by {loader.__name__[10:]} backend'
    loader = CheckpointLoader._get_checkpoint_loader(rich_checkpoint)
    assert loader.__module__ == 'lt_plugins.compat'
    assert loader.__name__.startswith('load_from_local')


def test_checkpoint_loader_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'nope.pth'))


# -- 3. num_workers=0 with persistent_workers=True ---------------------------------------------
@pytest.mark.parametrize('cfg_type', [dict, ConfigDict])
def test_build_dataloader_num_workers_zero_persistent(cfg_type):
    cfg = cfg_type(dataset=list(range(10)), batch_size=4, num_workers=0,
                   persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=False))
    loader = Runner.build_dataloader(cfg, seed=0)
    assert loader.num_workers == 0 and not loader.persistent_workers
    assert [list(b) for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert cfg['persistent_workers'] is True  # the caller's config is left as it was
    # without the fix PyTorch refuses this config
    with pytest.raises(ValueError, match='persistent_workers'):
        Runner.build_dataloader.__wrapped__(cfg_type(cfg), seed=0)


# -- 2. distributed launch without CUDA -------------------------------------------------------
def _dist_env(monkeypatch, world_size=1):
    # MASTER_PORT=0: the one rank's store binds a port the OS gives it (no port is picked,
    # released and bound again, which another process could take in between)
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE=str(world_size),
                           MASTER_ADDR='127.0.0.1', MASTER_PORT='0').items():
        monkeypatch.setenv(key, value)


def test_init_dist_pytorch_cpu_uses_gloo(monkeypatch):
    import mmengine.dist.utils as dist_utils
    if torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    _dist_env(monkeypatch)

    def no_cuda(*args, **kwargs):
        raise AssertionError('torch.cuda.set_device called on a CPU-only machine')

    monkeypatch.setattr(torch.cuda, 'set_device', no_cuda)
    assert not dist.is_initialized()
    dist_utils._init_dist_pytorch('nccl')  # mmengine's default backend
    try:
        assert dist.get_backend() == 'gloo' and dist.get_world_size() == 1
        t = torch.ones(2)
        dist.all_reduce(t)
        torch.testing.assert_close(t, torch.ones(2))
    finally:
        dist.destroy_process_group()


def test_init_dist_pytorch_keeps_gpu_behaviour(monkeypatch):
    import mmengine.dist.utils as dist_utils
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda idx: calls.append(('set_device', idx)))
    monkeypatch.setattr(torch.distributed, 'init_process_group',
                        lambda **kw: calls.append(('init', kw['backend'])))
    _dist_env(monkeypatch)
    monkeypatch.setenv('LOCAL_RANK', '3')
    dist_utils._init_dist_pytorch('nccl')
    assert calls == [('set_device', 3), ('init', 'nccl')]


def test_init_dist_pytorch_cpu_keeps_explicit_backend(monkeypatch):
    import mmengine.dist.utils as dist_utils
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.distributed, 'init_process_group',
                        lambda **kw: calls.append(kw))
    _dist_env(monkeypatch)
    dist_utils._init_dist_pytorch('gloo', timeout=None)
    dist_utils._init_dist_pytorch('mpi')
    assert calls == [dict(backend='gloo', timeout=None), dict(backend='mpi')]


def test_mmddp_on_cpu_module_drops_device_ids(monkeypatch):
    from mmengine.model.wrappers import MMDistributedDataParallel
    _dist_env(monkeypatch)
    dist.init_process_group('gloo', rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        module = nn.Linear(3, 2)
        ddp = MMDistributedDataParallel(module=module, device_ids=[0])
        assert ddp.device_ids is None
        ddp(torch.randn(4, 3)).sum().backward()
        assert module.weight.grad is not None
        # unpatched, DDP refuses device_ids for a CPU module
        with pytest.raises(ValueError, match='device_ids'):
            MMDistributedDataParallel.__init__.__wrapped__(
                MMDistributedDataParallel.__new__(MMDistributedDataParallel),
                module=nn.Linear(3, 2), device_ids=[0])
    finally:
        dist.destroy_process_group()


class _RecordingLogger:
    def __init__(self):
        self.lines = []

    def info(self, message):
        self.lines.append(message)


def _runner_for_log_env(distributed):
    """The attributes Runner._log_env reads, without building a Runner."""
    runner = Runner.__new__(Runner)
    runner.logger = _RecordingLogger()
    runner.cfg = ConfigDict()
    runner.cfg._cfg_dict = None  # no config dump
    runner._randomness_cfg, runner._seed = dict(deterministic=False), 0
    runner._launcher = 'pytorch' if distributed else 'none'
    runner._distributed, runner._world_size = distributed, 1
    return runner


def test_env_log_names_the_backend_actually_used(monkeypatch):
    """The config asks for nccl (mmengine's default); on CPU gloo runs, and the log says so."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    _dist_env(monkeypatch)
    env_cfg = dict(dist_cfg=dict(backend='nccl'))
    import mmengine.dist.utils as dist_utils
    dist_utils._init_dist_pytorch(env_cfg['dist_cfg']['backend'])
    try:
        runner = _runner_for_log_env(distributed=True)
        runner._log_env(env_cfg)
    finally:
        dist.destroy_process_group()
    environment, note = runner.logger.lines
    assert 'Distributed backend: gloo' in environment
    assert "dist_cfg: {'backend': 'nccl'}" in environment  # the config, as configured
    assert note.startswith('Distributed backend: gloo') and "backend='nccl'" in note
    assert env_cfg == dict(dist_cfg=dict(backend='nccl'))  # the caller's dict is untouched


def test_env_log_single_process_says_not_distributed():
    runner = _runner_for_log_env(distributed=False)
    runner._log_env(dict(dist_cfg=dict(backend='nccl')))
    assert len(runner.logger.lines) == 1
    assert 'Distributed backend: none (not distributed)' in runner.logger.lines[0]


# -- 4. np.in1d for MMPretrain's retrieval metrics ---------------------------------------------
def test_retrieval_in1d():
    from mmpretrain.evaluation.metrics import retrieval
    from mmpretrain.evaluation.metrics.retrieval import (RetrievalAveragePrecision,
                                                         RetrievalRecall)
    a, b = np.array([[1, 5], [2, 7]]), np.array([7, 1, 9])
    np.testing.assert_array_equal(retrieval.np.in1d(a, b), [True, False, False, True])
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.2], [0.8, 0.1, 0.06, 0.04]])
    recalls = RetrievalRecall.calculate(scores, [[1], [2]], topk=(1, 3), target_indices=True)
    assert [float(r) for r in recalls] == pytest.approx([50.0, 100.0])
    ap = RetrievalAveragePrecision.calculate(scores, [[1], [2]], topk=4, target_indices=True)
    assert float(ap) == pytest.approx(100 * (1 + 1 / 3) / 2)
    major, minor = (int(x) for x in np.__version__.split('.')[:2])
    if (major, minor) >= (2, 4):
        assert not hasattr(np, 'in1d')  # numpy itself is left alone


# -- 5. every Runner gets a ClassCountsHook ---------------------------------------------------
class _ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.fc(inputs)


def _counts_hooks(runner):
    return [h for h in runner.hooks if isinstance(h, ClassCountsHook)]


@pytest.mark.parametrize('custom_hooks', [None, [dict(type='EMAHook')]])
def test_runner_gets_class_counts_hook(tmp_path, custom_hooks):
    runner = Runner(model=_ToyModel(), work_dir=str(tmp_path), custom_hooks=custom_hooks,
                    default_scope='mmpretrain', experiment_name=f'compat_{id(custom_hooks)}',
                    log_level='WARNING')
    assert len(_counts_hooks(runner)) == 1
    assert len([h for h in runner.hooks if type(h).__name__ == 'EMAHook']) == \
        (1 if custom_hooks else 0)


def test_runner_keeps_a_configured_class_counts_hook(tmp_path):
    runner = Runner(model=_ToyModel(), work_dir=str(tmp_path),
                    custom_hooks=[dict(type='ClassCountsHook', class_counts=[4, 1])],
                    default_scope='mmpretrain', experiment_name='compat_configured',
                    log_level='WARNING')
    hooks = _counts_hooks(runner)
    assert len(hooks) == 1 and hooks[0].class_counts.tolist() == [4, 1]
