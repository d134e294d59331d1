"""The fast path (``fast_path`` config key): bfloat16 autocast where the CPU computes it
natively, channels-last backbones, float32 memories / statistics / losses (issue 34).

The processor is simulated by replacing the CPU flags, so every branch is checked on any
machine; bfloat16 itself is emulated where the CPU lacks it (slow, but the tiny DigitsLT
models below take a second).
"""
import logging
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from torch import nn

import lt_plugins  # noqa: F401
from lt_plugins.engine import fast_path as fp
from lt_plugins.engine.optimizers import AutocastOptimWrapper
from tests.checkpoint_families import FAMILIES, digits_config, train_family

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture
def cpu_flags(monkeypatch):
    """``cpu_flags('avx512_bf16')`` makes the fast path see a CPU with those flags."""
    def set_flags(*flags):
        monkeypatch.setattr(fp, '_cpu_flags', lambda: frozenset(('avx2', ) + flags))
    return set_flags


def test_auto_turns_bfloat16_on_only_where_the_cpu_has_it(cpu_flags):
    cpu_flags('avx512f', 'avx512_bf16')
    fast = fp.resolve_fast_path(dict(amp='auto'), 'cpu')
    assert fast.amp and fast.channels_last and fast.compile is None
    assert 'avx512_bf16' in fast.notes[0]
    cpu_flags('amx_bf16')
    assert fp.resolve_fast_path(dict(), 'cpu').amp
    cpu_flags('avx512f')                      # AVX-512 without bfloat16: float32
    fast = fp.resolve_fast_path(dict(amp='auto'), 'cpu')
    assert not fast.amp and fast.channels_last
    assert fast.notes == ['bfloat16 autocast off: this CPU has no native bfloat16 '
                          '(avx512_bf16 / amx_bf16 absent), where it is slower than float32; '
                          'training runs in float32']


def test_explicit_amp_is_refused_without_native_bfloat16(cpu_flags):
    cpu_flags()
    with pytest.raises(RuntimeError, match=r"no native bfloat16 instructions.*"
                                           r"fast_path.amp='auto'.*--no-amp"):
        fp.resolve_fast_path(dict(amp=True), 'cpu')
    assert not fp.resolve_fast_path(dict(amp=False), 'cpu').amp
    cpu_flags('avx512_bf16')
    assert fp.resolve_fast_path(dict(amp=True), 'cpu').amp
    assert not fp.resolve_fast_path(dict(amp=False, channels_last=False), 'cpu').channels_last


def test_cuda_keeps_the_config_unless_asked_and_channels_last_follows_amp():
    assert not fp.resolve_fast_path(dict(), 'cuda').amp
    assert not fp.resolve_fast_path(dict(), 'cuda').channels_last
    fast = fp.resolve_fast_path(dict(), 'cuda', config_amp=True)
    assert fast.amp and fast.channels_last
    assert fp.resolve_fast_path(dict(amp=True), 'cuda').channels_last


@pytest.mark.parametrize('cfg, error, match', [
    (dict(amp='yes'), ValueError, r"fast_path.amp='yes': use one of 'auto', True, False"),
    (dict(channels_last=1.0), ValueError, 'fast_path.channels_last'),
    (dict(compile='max'), TypeError, 'fast_path.compile'),
    (dict(bf16=True), KeyError, r"unknown keys \['bf16'\]"),
    ('auto', TypeError, 'use a dict'),
])
def test_bad_fast_path_configs_name_the_field(cfg, error, match):
    with pytest.raises(error, match=match):
        fp.resolve_fast_path(cfg, 'cpu')


def test_no_fast_path_key_changes_nothing():
    fast = fp.resolve_fast_path(None, 'cpu')
    assert not fast.amp and not fast.channels_last and fast.compile is None


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                                      nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2))
        self.register_buffer('bank', torch.randn(2, 3, 4, 5))   # a 4-D memory: untouched
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.backbone(x).mean((2, 3)))


def test_channels_last_converts_backbone_convs_only_and_keeps_parameters_and_outputs():
    torch.manual_seed(0)
    net, ref = _Net(), _Net()
    ref.load_state_dict(net.state_dict())
    params = [id(p) for p in net.parameters()]
    assert fp.convert_to_channels_last(net) == 2
    assert [id(p) for p in net.parameters()] == params          # optimizer / DDP unaffected
    for conv in (net.backbone[0], net.backbone[3]):
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert not conv.weight.is_contiguous()
    assert net.bank.is_contiguous()                             # memories keep their layout
    seen = []
    net.backbone[0].register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    x = torch.randn(4, 3, 9, 9)
    out = net(x)
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref(x), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert net.backbone[0].weight.grad.shape == (8, 3, 3, 3)
    # the state dict still loads into an NCHW model and gives the same weights
    plain = _Net()
    plain.load_state_dict(net.state_dict())
    torch.testing.assert_close(plain.backbone[0].weight, ref.backbone[0].weight)
    assert fp.convert_to_channels_last(net) == 2   # idempotent: no second input hook
    assert len(net.backbone._forward_pre_hooks) == 1


def _runner(tmp_path, family, fast_path, name, load_from=None):
    config, model, _ = FAMILIES[family]
    cfg = Config.fromfile(digits_config(config, str(tmp_path / f'{name}.py'), model,
                                        load_from=load_from))
    cfg.work_dir = str(tmp_path / name)
    cfg.experiment_name = name
    cfg.log_level = logging.WARNING
    cfg.train_cfg.max_epochs = 1
    cfg.fast_path = fast_path
    return Runner.from_cfg(cfg)


def test_package_configs_carry_the_fast_path_key():
    cfg = Config.fromfile(osp.join(REPO, FAMILIES['ce'][0]))
    assert cfg.fast_path == dict(amp='auto', channels_last='auto', compile=False)


def test_runner_without_bfloat16_trains_float32_channels_last(tmp_path, cpu_flags, caplog):
    cpu_flags()
    runner = _runner(tmp_path, 'ce', dict(amp='auto'), 'ce_fp32')
    assert runner.fast_path.channels_last and not runner.fast_path.amp
    assert runner.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'
    convs = [m for m in runner.model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last)
                         for c in convs)
    runner.train()
    assert type(runner.optim_wrapper) is not AutocastOptimWrapper
    with pytest.raises(RuntimeError, match='no native bfloat16'):
        _runner(tmp_path, 'ce', dict(amp=True), 'ce_refused')


# every family whose model holds a memory, a statistic or a dictionary, plus CE
FLOAT32_FAMILIES = ['ce', 'mbj', 'iem', 'stg2', 'afa', 'ldam-drw', 'ride']
_EXTRA = {
    'ldam-drw': ('configs/baselines/ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
                 ''),
    'ride': ('configs/ride/ride_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', ''),
}


@pytest.mark.parametrize('family', FLOAT32_FAMILIES)
def test_bfloat16_fast_path_keeps_memories_statistics_and_losses_float32(
        tmp_path, cpu_flags, monkeypatch, family):
    cpu_flags('avx512_bf16')
    if family in _EXTRA:
        monkeypatch.setitem(FAMILIES, family, _EXTRA[family] + (None, ))
    # a stage that needs its predecessor's backbone gets one (trained in float32)
    load_from = (train_family(FAMILIES[family][2], str(tmp_path), {})
                 if family == 'stg2' else None)
    runner = _runner(tmp_path, family, dict(amp='auto'), f'{family}_bf16', load_from)
    assert runner.fast_path.amp and runner.optim_wrapper['type'] == 'AutocastOptimWrapper'
    assert runner._val_loop['fp16'] and runner._test_loop['fp16']
    runner.train()
    assert isinstance(runner.optim_wrapper, AutocastOptimWrapper)
    model = runner.model
    full = (torch.float32, torch.float64)   # STG's prototype sums accumulate in float64
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            assert value.dtype in full, key               # weights, memories, statistics
    # one more step by hand: inside autocast the convolutions run in bfloat16, and every
    # loss term the model returns is float32
    batch = next(iter(runner.train_dataloader))
    conv_dtypes = []
    conv = next(m for m in model.backbone.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda m, a, out: conv_dtypes.append(out.dtype))
    with runner.optim_wrapper.optim_context(model):
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
    assert conv_dtypes == [torch.bfloat16]
    terms = {k: v for k, v in losses.items() if isinstance(v, torch.Tensor)
             and v.is_floating_point() and 'loss' in k}
    assert terms and all(v.dtype == torch.float32 for v in terms.values()), \
        {k: v.dtype for k, v in terms.items()}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            assert value.dtype in full, key


@pytest.mark.slow   # ~35 s: two emulated-bfloat16 runs of MBJ on a loaded machine
def test_bfloat16_channels_last_run_resumes_bit_exactly(tmp_path, cpu_flags):
    """Exact resume holds with the whole fast path on (bfloat16 simulated as native)."""
    from tests.runner_utils import assert_resume_matches_uninterrupted
    cpu_flags('avx512_bf16')

    def make_runner(work_dir, name, max_epochs, load_from=None, resume=False):
        config, model, _ = FAMILIES['mbj']
        cfg = Config.fromfile(digits_config(config, osp.join(str(tmp_path), f'{name}.py'),
                                            model, max_epochs=max_epochs,
                                            load_from=load_from))
        cfg.merge_from_dict(dict(work_dir=work_dir, experiment_name=name, resume=resume,
                                 log_level=logging.WARNING))
        runner = Runner.from_cfg(cfg)
        assert runner.fast_path.amp and runner.fast_path.channels_last
        return runner

    full, resumed = assert_resume_matches_uninterrupted(make_runner, tmp_path, 'mbj_fast',
                                                        stop_epoch=1, max_epochs=2)
    assert isinstance(resumed.optim_wrapper, AutocastOptimWrapper)
