"""Issue 19 AFANeck options: masks that do not shrink with D, the text's X_var, and
generated features that leave the last stage's BatchNorm statistics alone."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lt_plugins.models.necks import AFANeck
from lt_plugins.models.necks.afa_neck import generation_counts, sample_pairs
from .test_afa_neck import _neck, _reference, _samples


def _expected_mask(neck, ref):
    d, hw = ref['v'].shape[1], ref['v'].shape[2] * ref['v'].shape[3]
    if neck.mask_type == 'sigmoid':
        return torch.sigmoid(ref['logits'])
    if neck.mask_type == 'softmax_times_n':
        return ref['mask'] * (d if neck.mask_axis == 'channel' else hw)
    return ref['mask']


@pytest.mark.parametrize('mask', ['sigmoid', 'softmax_times_n'])
@pytest.mark.parametrize('mask_axis', ['channel', 'spatial'])
@pytest.mark.parametrize('grad', [True, False])
def test_mask_variants_match_reference(mask, mask_axis, grad):
    neck = _neck(mask=mask, mask_axis=mask_axis).double()
    torch.manual_seed(1)
    x = torch.randn(3, 8, 4, 3, dtype=torch.float64)
    ref = _reference(neck, x)
    expected = _expected_mask(neck, ref)
    with torch.set_grad_enabled(grad):
        parts = neck.decompose(x)
        enhanced = neck.enhance(x)
    torch.testing.assert_close(parts['mask'], expected)
    torch.testing.assert_close(parts['x_class'], expected * ref['v'])
    torch.testing.assert_close(parts['x_var'], ref['v'] - expected * ref['v'])
    torch.testing.assert_close(enhanced, x + expected * ref['v'])
    if mask == 'softmax_times_n':  # mean 1 along the softmax axis instead of 1/n
        mean = parts['mask'].flatten(2).mean(1 if mask_axis == 'channel' else 2)
        torch.testing.assert_close(mean, torch.ones_like(mean))


@pytest.mark.parametrize('mask', ['softmax', 'sigmoid', 'softmax_times_n'])
def test_class_ratio_logged_for_every_mask(mask):
    neck = _neck(mask=mask).double()
    x = torch.randn(4, 8, 4, 3, dtype=torch.float64)
    neck.train()
    _, extras = neck(x, data_samples=_samples([0, 0, 1, 2]))
    ref = _reference(neck, x)
    expected = (_expected_mask(neck, ref) * ref['v']).norm() / ref['v'].norm()
    torch.testing.assert_close(extras['log_vars']['afa_class_ratio'].double(), expected)


def test_var_source_input_uses_the_original_features():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    x = torch.randn(6, 8, 4, 3)
    neck = _neck(var_source='input', placement='before_last_stage')
    parts = neck.decompose(x)
    torch.testing.assert_close(parts['x_var'], x - parts['x_class'])
    default = _neck().decompose(x)
    assert not torch.allclose(default['x_var'], parts['x_var'])
    # the generated features pair X_class[i] with X[j] - X_class[j]
    neck.train()
    seed, step = int(neck.pair_seed), int(neck.pair_step)
    (pooled, ), extras = neck(x, data_samples=_samples(labels.tolist()), tail=lambda t: t)
    ref_neck = _neck(var_source='input', placement='before_last_stage')
    ref_neck.pair_seed.fill_(seed)
    ref_neck.pair_step.fill_(step)
    classes, counts, num_gen = generation_counts(labels, 4.0, 1.0)
    i, j, gen_labels = sample_pairs(labels, classes, counts, num_gen,
                                    ref_neck.pair_generator(x.device))
    gen = parts['x_class'][i] + x[j] - parts['x_class'][j]
    torch.testing.assert_close(pooled[6:], F.adaptive_avg_pool2d(gen, 1).flatten(1))
    torch.testing.assert_close(extras['gen_labels'], gen_labels)


class _Backbone(nn.Module):

    def __init__(self):
        super().__init__()
        self.tail = nn.BatchNorm2d(8)

    def forward_tail(self, x):
        return self.tail(x)


@pytest.mark.parametrize('gen_bn', ['shared', 'frozen_stats'])
def test_generated_features_and_bn_running_statistics(gen_bn):
    torch.manual_seed(0)
    neck = _neck(placement='before_last_stage', gen_bn=gen_bn)
    backbone = _Backbone()
    neck.train()
    backbone.train()
    labels = [0, 0, 0, 0, 1, 2]
    x = torch.randn(6, 8, 4, 3) * 3 + 1
    seed, step = int(neck.pair_seed), int(neck.pair_step)
    (pooled, ), extras = neck(x, data_samples=_samples(labels), tail=backbone.forward_tail)
    # the same features, by hand
    parts = neck.decompose(x)
    neck.pair_step.fill_(step)
    x_gen, _ = neck.generate_features(parts['x_class'], parts['x_var'], torch.tensor(labels))
    real, num_gen = parts['x_enh'].detach(), x_gen.shape[0]
    assert num_gen == extras['gen_labels'].numel() > 0
    every = torch.cat([real, x_gen.detach()])
    dims = (0, 2, 3)
    if gen_bn == 'shared':  # one pass: the running mean is 0.1 * the mean of real + generated
        torch.testing.assert_close(backbone.tail.running_mean, 0.1 * every.mean(dims))
        ref = F.batch_norm(every, None, None, training=True)
    else:  # real only; each half normalised by its own batch statistics
        torch.testing.assert_close(backbone.tail.running_mean, 0.1 * real.mean(dims))
        torch.testing.assert_close(backbone.tail.running_var,
                                   0.9 + 0.1 * real.var(dims, unbiased=True))
        ref = torch.cat([F.batch_norm(real, None, None, training=True),
                         F.batch_norm(x_gen.detach(), None, None, training=True)])
        assert backbone.tail.momentum == 0.1  # restored
    assert int(backbone.tail.num_batches_tracked) == 1
    torch.testing.assert_close(pooled.detach(), F.adaptive_avg_pool2d(ref, 1).flatten(1),
                               rtol=1e-4, atol=1e-5)


def test_option_errors():
    for kwargs, field in ((dict(mask='relu'), 'mask'), (dict(var_source='x'), 'var_source'),
                          (dict(gen_bn='off'), 'gen_bn')):
        with pytest.raises(ValueError, match=field):
            _neck(**kwargs)
    with pytest.raises(ValueError, match='before_last_stage'):
        AFANeck(8, feat_size=(4, 3), placement='after_last_stage', gen_bn='frozen_stats')
    neck = _neck(placement='before_last_stage', gen_bn='frozen_stats')
    neck.train()
    with pytest.raises(TypeError, match='nn.Module'):
        neck(torch.randn(4, 8, 4, 3), data_samples=_samples([0, 0, 0, 1]), tail=lambda t: t)


SCREEN_OPTIONS = dict(spatial=('mask_axis', 'spatial'), sigmoid=('mask_type', 'sigmoid'),
                      softmaxn=('mask_type', 'softmax_times_n'),
                      varinput=('var_source', 'input'), bnfrozen=('gen_bn', 'frozen_stats'),
                      conv1x1=('qkv_mode', 'conv1x1'), ce=('attention_addition', False))


@pytest.mark.parametrize('variant', sorted(SCREEN_OPTIONS))
def test_screen_configs_build_with_their_option(variant):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    t = 'resnet32-cifar_1xb128_cifar10-lt-ir100-cpu'
    attr, value = SCREEN_OPTIONS[variant]
    stage = Config.fromfile(f'configs/afa/afa_{t}-screen15-{variant}.py')
    crt = Config.fromfile(f'configs/afa/afa-crt_{t}-screen15-{variant}.py')
    assert crt.load_from == f'work_dirs/afa_{t}-screen15-{variant}/epoch_15.pth'
    assert stage.train_cfg.max_epochs == 15
    for cfg in (stage, crt):
        model = MODELS.build(cfg.model)
        assert getattr(model.neck, attr) == value
    default = Config.fromfile(f'configs/afa/afa_{t}-screen15.py').model.neck
    assert (default.get('mask', 'softmax'), default.mask_axis, default.qkv) == (
        'softmax', 'channel', 'linear')


@pytest.mark.slow
@pytest.mark.parametrize('data', ['cifar10', 'cifar100'])
def test_resnext50_cifar_stem_configs_give_8x8_maps(data):
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    for name in (f'afa_resnext50_1xb128_{data}-lt-ir100-cifarstem.py',
                 f'afa-crt_resnext50_1xb128_{data}-lt-ir100-cifarstem.py'):
        model = MODELS.build(Config.fromfile(f'configs/afa/{name}').model)
        assert model.backbone.cifar_stem and model.neck.feat_size == (8, 8)
