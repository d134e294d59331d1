"""STG's three chained stages through mmengine's Runner on DigitsLT (bundled with sklearn):
checkpoint chaining, the predecessor-checkpoint errors, cached features == live backbone."""
import glob
import logging
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

import lt_plugins  # noqa: F401  (registration)

# DigitsLT train counts: 150 104 73 51 35 25 17 12 8 6 -> head_threshold=30: 5 head, 5 tail
HEAD_THRESHOLD = 30
BACKBONE = dict(type='TIMMBackbone', model_name='resnet32_cifar', in_channels=1)


def _preprocessor():  # a fresh dict: ImageClassifier writes batch_augments into it
    return dict(type='ClsDataPreprocessor', num_classes=10, mean=[78.0], std=[96.0])


def _loader(sampler='DefaultSampler'):
    return dict(batch_size=32, num_workers=0,
                dataset=dict(type='DigitsLT', split='train',
                             pipeline=[dict(type='PackInputs')]),  # deterministic pipeline
                sampler=dict(type=sampler, shuffle=True, seed=0))


def _runner(work_dir, name, model, epochs, optimizer, sampler='DefaultSampler',
            load_from=None, hooks=()):
    return Runner(
        model=model, work_dir=osp.join(work_dir, name), experiment_name=name,
        train_dataloader=_loader(sampler),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optimizer=optimizer),
        custom_hooks=[dict(type='ClassCountsHook'), *hooks],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=epochs),
                           logger=dict(type='LoggerHook', interval=50)),
        randomness=dict(seed=0), default_scope='mmpretrain', load_from=load_from,
        log_level=logging.WARNING)


def _stage1(work_dir):
    model = dict(type='ImageClassifier', backbone=BACKBONE,
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=10, in_channels=64),
                 data_preprocessor=_preprocessor(),
                 train_cfg=dict(augments=dict(type='Mixup', alpha=1.0)))
    runner = _runner(work_dir, 'stage1', model, 1,
                     dict(type='SGD', lr=0.05, momentum=0.9))
    runner.train()
    return glob.glob(osp.join(work_dir, 'stage1', 'epoch_1.pth'))[0], runner


def _stage2_model():
    return dict(type='FeatureCacheClassifier', reinit_head=False,
                predecessor='stage 1', backbone=BACKBONE,
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='STGGeneratorHead', num_classes=10, in_channels=64,
                          head_threshold=HEAD_THRESHOLD, dictionary_size=64),
                data_preprocessor=_preprocessor())


def _stage3_model(**head):
    return dict(type='FeatureCacheClassifier', reinit_head=False,
                predecessor='stage 2 (STG generator)', backbone=BACKBONE,
                neck=dict(type='GlobalAveragePooling'),
                head=dict(type='STGClsHead', num_classes=10, in_channels=64,
                          head_threshold=HEAD_THRESHOLD, **head),
                data_preprocessor=_preprocessor())


@pytest.fixture(scope='module')
def chain(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('stg'))
    ckpt1, r1 = _stage1(work_dir)
    r2 = _runner(work_dir, 'stage2', _stage2_model(), 2, dict(type='Adam', lr=1e-3),
                 load_from=ckpt1)
    r2.train()
    ckpt2 = osp.join(work_dir, 'stage2', 'epoch_2.pth')
    return dict(work_dir=work_dir, ckpt1=ckpt1, ckpt2=ckpt2, r1=r1, r2=r2)


def test_stage2_trains_generator_and_keeps_stage1(chain):
    s1 = chain['r1'].model.state_dict()
    m2 = chain['r2'].model
    head = m2.head
    assert head.generator.trained_iters.item() == 2 * 16  # 481 images / 32 -> 16 iters
    assert head.generator.proto_count[:5].min() > 0 and head.generator.proto_count[5:].sum() == 0
    assert head.dictionary.fill_ratio() == 1.0
    assert bool((head.dictionary.get()[1] < 5).all())  # head classes only
    for key in ('head.fc.weight', 'backbone.timm_model.conv1.weight',
                'backbone.timm_model.bn1.running_mean'):
        torch.testing.assert_close(m2.state_dict()[key], s1[key])  # frozen, BN in eval


def test_stage_without_predecessor_checkpoint_errors(chain):
    r2 = _runner(chain['work_dir'], 'stage2_nockpt', _stage2_model(), 1,
                 dict(type='Adam', lr=1e-3))
    with pytest.raises(RuntimeError, match='load_from'):
        r2.train()
    # stage 3 on the stage-1 checkpoint: backbone loaded, generator not
    r3 = _runner(chain['work_dir'], 'stage3_wrong', _stage3_model(), 1,
                 dict(type='Adam', lr=1e-3), sampler='ClassBalancedSampler',
                 load_from=chain['ckpt1'])
    with pytest.raises(RuntimeError, match='stage-2 checkpoint'):
        r3.train()


def test_cached_features_equal_live_backbone(chain):
    results = {}
    for mode in ('live', 'cached'):
        hooks = [dict(type='FeatureCacheHook')] if mode == 'cached' else []
        runner = _runner(chain['work_dir'], f'stage3_{mode}', _stage3_model(), 2,
                         dict(type='Adam', lr=1e-3), sampler='ClassBalancedSampler',
                         load_from=chain['ckpt2'], hooks=hooks)
        runner.train()
        results[mode] = {k: v.clone() for k, v in runner.model.head.state_dict().items()}
        if mode == 'cached':
            from torch.utils.data import DataLoader
            assert isinstance(runner.train_loop.dataloader, DataLoader)
            assert type(runner.train_loop.dataloader.dataset).__name__ == \
                'CachedFeatureDataset'
    live, cached = results['live'], results['cached']
    s2 = torch.load(chain['ckpt2'], map_location='cpu', weights_only=False)['state_dict']
    assert not torch.allclose(live['fc.weight'], s2['head.fc.weight'][:10])  # re-trained
    torch.testing.assert_close(cached['fc.weight'], live['fc.weight'], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cached['fc.bias'], live['fc.bias'], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cached['generator.tokens'], s2['head.generator.tokens'])


def test_table5_kl_tool(chain, tmp_path):
    """tools/analysis/stg_kl_divergence.py on the stage-2 checkpoint of DigitsLT."""
    import importlib.util
    import json
    cfg_path = tmp_path / 'stg_digits_stage2.py'
    loader = _loader()
    cfg_path.write_text(
        f'model = {_stage2_model()!r}\n'
        f'train_dataloader = {loader!r}\n'
        f'test_dataloader = {loader!r}\n')
    spec = importlib.util.spec_from_file_location(
        'stg_kl', osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis',
                           'stg_kl_divergence.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'kl.json'
    res = tool.main([str(cfg_path), chain['ckpt2'], '--num-samples', '4', '--out', str(out)])
    assert res['tail_class'] == 9 and res['train_count'] == 6  # rarest DigitsLT class
    kl = torch.tensor(res['kl'])
    assert kl.shape == (4, 4) and kl.diagonal().abs().max() < 1e-6
    assert (kl + torch.eye(4) > 0).all()  # distinct samples -> positive divergence
    assert all(0 <= c < 5 for c in res['head_class'])  # borrowed tokens are head classes
    assert json.loads(out.read_text())['kl'] == res['kl']


def test_composed_stage3_equals_stg_cls_head(chain):
    """STG stage 3 written with parts (cRT FeatureCacheClassifier + ComposedClsHead(linear,
    generator=STGFeatureGenerator)) trains exactly like the STGClsHead preset from the same
    stage-2 checkpoint: the generator is carried, the classifier re-initialised, the draws
    keyed alike."""
    composed = dict(_stage3_model(), reinit_head=True,
                    head=dict(type='ComposedClsHead', num_classes=10, in_channels=64,
                              classifier=dict(type='LinearClsHead'),
                              generator=dict(head_threshold=HEAD_THRESHOLD)))
    heads = {}
    for name, model in (('preset', _stage3_model()), ('composed', composed)):
        runner = _runner(chain['work_dir'], f'stage3_{name}', model, 1,
                         dict(type='Adam', lr=1e-3), sampler='ClassBalancedSampler',
                         load_from=chain['ckpt2'], hooks=[dict(type='FeatureCacheHook')])
        runner.train()
        heads[name] = runner.model.head
    preset, parts = heads['preset'], heads['composed']
    torch.testing.assert_close(parts.classifier.fc.weight, preset.fc.weight, rtol=0, atol=0)
    torch.testing.assert_close(parts.classifier.fc.bias, preset.fc.bias, rtol=0, atol=0)
    assert int(parts.generator.aug_step) == int(preset.aug_step) == 16
    for key, value in preset.generator.state_dict().items():
        torch.testing.assert_close(parts.generator.generator_net.state_dict()[key], value,
                                   rtol=0, atol=0, msg=key)
    s2 = torch.load(chain['ckpt2'], map_location='cpu', weights_only=False)['state_dict']
    assert not torch.allclose(parts.classifier.fc.weight, s2['head.fc.weight'])  # cRT
