"""Exact resume from an iteration checkpoint inside an epoch (a preempted job): for every
method the resumed run trains only the remaining iterations and ends bit-identical to an
uninterrupted run (weights, memories, counters); AFA's pair draws replay too."""
import logging

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401  (registration)
from lt_plugins.engine.loops import MidEpochResumeTrainLoop
from tests.runner_utils import ToyLT, assert_iteration_resume_matches_uninterrupted
from tests.test_models.test_iem_runner import _IEMTinyNet  # noqa: F401  (registers it)
from tests.test_models.test_mbj_runner import _MBJTinyNet  # noqa: F401

ITERS_PER_EPOCH = 6  # 48 samples, batch 8


class _IndexedToyLT(ToyLT):
    """ToyLT with ``sample_idx`` (STG's smoothing) and a count of loaded samples."""

    def __init__(self):
        super().__init__()
        self.loaded = 0

    def __getitem__(self, i):
        self.loaded += 1
        sample = DataSample(metainfo=dict(sample_idx=int(i))).set_gt_label(int(self.labels[i]))
        return dict(inputs=self.images[i], data_samples=sample)


class _Batches(Hook):
    """Records ``(epoch, batch_idx)`` of every trained iteration."""

    def __init__(self):
        self.seen = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.seen.append((runner.epoch, batch_idx))


TINY = dict(type='_MBJTinyNet')
MODELS = {
    'ce': dict(type='ImageClassifier', backbone=TINY, neck=dict(type='GlobalAveragePooling'),
               head=dict(type='LinearClsHead', num_classes=4, in_channels=8)),
    'mbj': dict(type='ImageClassifier', backbone=TINY, neck=dict(type='GlobalAveragePooling'),
                head=dict(type='MBJClsHead', num_classes=4, in_channels=8, eta=15.0,
                          memory=dict(type='RebalancedFIFOMemory', size=12, beta=1.5))),
    'stg': dict(type='ImageClassifier', backbone=TINY, neck=dict(type='GlobalAveragePooling'),
                head=dict(type='STGGeneratorHead', num_classes=4, in_channels=8,
                          head_threshold=10, dictionary_size=12, smooth_momentum=0.5)),
    'stg3': dict(type='ImageClassifier', backbone=TINY, neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='STGClsHead', num_classes=4, in_channels=8, head_threshold=10,
                           augment='gaussian')),
    'iem': dict(type='ImageClassifier', backbone=dict(type='_IEMTinyNet'),
                neck=dict(type='RSANeck', in_channels=8),
                head=dict(type='IEMHead', num_classes=4, in_channels=8, global_capacity=6,
                          local_capacity=12, num_neighbors=3, warmup_iters=3,
                          local_regions=4)),
    'afa': dict(type='LabelAwareClassifier',
                backbone=dict(type='TimmSplitBackbone', model_name='resnet32_cifar'),
                neck=dict(type='AFANeck', in_channels=32, feat_size=(4, 4)),
                head=dict(type='AFAClsHead', num_classes=4, in_channels=64)),
}
HOOKS = {
    'mbj': [dict(type='MBJMemoryStatsHook', interval=3)],
    'iem': [dict(type='IEMMemoryHook', log_interval=2)],
    'afa': [dict(type='LBLSHook', start=1, weight=2.0)],
}
SAMPLERS = {'ce': 'DefaultSampler', 'mbj': 'InstanceBalancedSampler', 'stg': 'DefaultSampler',
            'stg3': 'ClassBalancedSampler', 'iem': 'ClassBalancedSampler',
            'afa': 'InstanceBalancedSampler'}


def _optim(method):
    if method == 'iem':
        group = dict(adam=True, lr_mult=0.1, decay_mult=0.0)
        return dict(optimizer=dict(type='HybridSGDAdam', lr=0.05, momentum=0.9,
                                   weight_decay=1e-4),
                    paramwise_cfg=dict(custom_keys={'head.global_memory': group,
                                                    'head.local_memory': group}))
    if method == 'stg':
        return dict(optimizer=dict(type='Adam', lr=1e-3))
    return dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))


def _runner(work_dir, name, method, max_epochs=2, loop=None, by_iter=False, load_from=None,
            resume=False, recorder=None, dataset=None, sampler=None):
    model = dict(MODELS[method], data_preprocessor=dict(type='ClsDataPreprocessor'))
    if by_iter:
        train_cfg = dict(by_epoch=False, max_iters=max_epochs * ITERS_PER_EPOCH)
        hooks = [dict(h, by_epoch=False, start=ITERS_PER_EPOCH) if h['type'] == 'LBLSHook'
                 else h for h in HOOKS.get(method, [])]  # LBLS from iteration 6
    else:
        train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
        if loop is not None:
            train_cfg = dict(type=loop, max_epochs=max_epochs)
        hooks = list(HOOKS.get(method, []))
    return Runner(
        model=model, work_dir=work_dir, experiment_name=name,
        train_dataloader=dict(dataset=dataset or _IndexedToyLT(), batch_size=8,
                              num_workers=0,
                              sampler=dict(type=sampler or SAMPLERS[method], shuffle=True,
                                           seed=0)),
        train_cfg=train_cfg,
        optim_wrapper=_optim(method),
        param_scheduler=dict(type='MultiStepLR', milestones=[1], gamma=0.2,
                             by_epoch=not by_iter),
        custom_hooks=[dict(type='ClassCountsHook'), *hooks] + ([recorder] if recorder else []),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=3)),
        randomness=dict(seed=0), default_scope='mmpretrain', load_from=load_from,
        resume=resume, log_level=logging.WARNING)


@pytest.mark.parametrize('method', ['ce', 'mbj', 'stg', 'stg3', 'iem', 'afa'])
def test_mid_epoch_resume_equals_uninterrupted(tmp_path, method):
    torch.set_num_threads(1)
    recorder = _Batches()

    def make(work_dir, name, **kwargs):
        return _runner(work_dir, name, method,
                       recorder=recorder if 'resumed' in name else None, **kwargs)

    # iter_8: epoch 1 (0-based), 2 of its 6 batches done
    full, resumed = assert_iteration_resume_matches_uninterrupted(make, tmp_path, method,
                                                                  resume_iter=8)
    assert isinstance(full.train_loop, MidEpochResumeTrainLoop)
    assert recorder.seen == [(1, 2), (1, 3), (1, 4), (1, 5)]  # only what was left
    if method == 'mbj':
        assert int(full.model.head.memory.step) == 12
    if method == 'afa':
        assert int(full.model.neck.pair_step) == ITERS_PER_EPOCH  # LBLS: epoch 1 generates
    if method == 'stg3':  # stage 3's augmentation draws are keyed, not global
        assert int(full.model.head.aug_step) == 2 * ITERS_PER_EPOCH


def test_package_sampler_skips_without_loading(tmp_path):
    """The package's samplers skip the trained batches; the others load and drop them."""
    for sampler, loaded in (('InstanceBalancedSampler', 4 * 8), ('DefaultSampler', 6 * 8)):
        runner = _runner(str(tmp_path / sampler), 'skip', 'ce', max_epochs=1, sampler=sampler)
        loop = runner.train_loop
        dataset = loop.dataloader.dataset  # the runner's copy
        loop._iter = 2  # as restored from iter_2.pth: 2 batches of epoch 0 done
        assert loop.iters_done_in_epoch() == 2
        batches = list(loop._batches(loop.iters_done_in_epoch()))
        assert len(batches) == 4 and dataset.loaded == loaded
        indices = [ds.sample_idx for batch in batches for ds in batch['data_samples']]
        loop.dataloader.sampler.set_epoch(0)
        assert indices == list(loop.dataloader.sampler)[2 * 8:]  # same draw, later


def test_mmengine_loop_replays_the_epoch(tmp_path):
    """mmengine's own loop stays usable by name and shows the bug the package loop fixes."""
    full = _runner(str(tmp_path / 'full'), 'full', 'mbj')
    full.train()
    recorder = _Batches()
    resumed = _runner(str(tmp_path / 'resumed'), 'resumed', 'mbj', loop='EpochBasedTrainLoop',
                      load_from=str(tmp_path / 'full' / 'iter_8.pth'), resume=True,
                      recorder=recorder)
    resumed.train()
    assert type(resumed.train_loop) is EpochBasedTrainLoop
    assert len(recorder.seen) == ITERS_PER_EPOCH and resumed.iter == 14
    assert int(resumed.model.head.memory.step) == 14 != int(full.model.head.memory.step)


def test_afa_iteration_loop_resume_is_exact(tmp_path):
    """AFA + LBLS under an iteration-based loop: the pair draws replay after resume."""
    torch.set_num_threads(1)
    full, resumed = assert_iteration_resume_matches_uninterrupted(
        lambda work_dir, name, **kw: _runner(work_dir, name, 'afa', by_iter=True, **kw),
        tmp_path, 'afa_iter', resume_iter=8)
    assert int(full.model.neck.pair_step) == ITERS_PER_EPOCH
