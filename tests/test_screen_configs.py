"""Issue 18 screen configs: each arm differs from its base / control only where it says."""
import copy

import pytest
from mmengine.config import Config

import lt_plugins  # noqa: F401
from lt_plugins.engine.optimizers import HybridSGDAdam

MBJ = 'configs/mbj/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu'
CE_FT = 'configs/mbj/ce-ft_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu'
IEM = 'configs/iem/iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-ft10'


def _plain(cfg):
    return copy.deepcopy(cfg.to_dict())


@pytest.mark.parametrize('arm', ['lr1e-3', 'lr1e-4', 'bbmult0.1'])
def test_mbj_lr_arm_and_its_control_differ_only_in_the_memory(arm):
    mbj = _plain(Config.fromfile(f'{MBJ}-{arm}.py'))
    ctrl = _plain(Config.fromfile(f'{CE_FT}-{arm}.py'))
    assert mbj['model']['head'].get('memory_enabled', True) is True
    assert ctrl['model']['head']['memory_enabled'] is False
    assert [h['type'] for h in ctrl['custom_hooks']] == ['ClassCountsHook']
    for cfg in (mbj, ctrl):
        cfg['model']['head'].pop('memory_enabled', None)
        cfg.pop('custom_hooks')
    assert mbj == ctrl
    lr = mbj['optim_wrapper']['optimizer']['lr']
    custom = mbj['optim_wrapper'].get('paramwise_cfg', {}).get('custom_keys', {})
    assert (lr, custom) == {'lr1e-3': (0.001, {}), 'lr1e-4': (0.0001, {}),
                            'bbmult0.1': (0.01, {'backbone': {'lr_mult': 0.1}})}[arm]


def test_mbj_memory_arms_at_lr1e_3():
    base = Config.fromfile(f'{MBJ}-lr1e-3.py').model.head
    assert (base.memory.beta, base.memory.size, base.eta) == (1.5, 50, 15.0)
    assert Config.fromfile(f'{MBJ}-lr1e-3-beta1.py').model.head.memory.beta == 1.0
    rings = Config.fromfile(f'{MBJ}-lr1e-3-perclass5.py').model.head.memory
    assert rings.size is None and rings.per_class_slots == 5
    cap = Config.fromfile(f'{MBJ}-lr1e-3-capacity.py')
    assert cap.model.head.memory_reduction == 'capacity'
    assert cap.optim_wrapper.optimizer.lr == 0.001
    crt = Config.fromfile(f'{MBJ}-lr1e-3-then-crt.py')
    assert crt.model.type == 'DecoupledClassifier' and crt.model.reinit_head is True
    assert crt.train_dataloader.sampler.type == 'ClassBalancedSampler'
    assert crt.load_from.endswith('cifar10-lt-ir100-cpu-lr1e-3/epoch_10.pth')


@pytest.mark.parametrize('arm,memory_lr', [('', 1e-5), ('-memlr1e-3', 1e-3),
                                           ('-learnable-values', 1e-3)])
def test_iem_screens_hold_the_memory_lr(arm, memory_lr):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(f'{IEM}{arm}.py')
    assert cfg.train_cfg.max_epochs == 10
    assert cfg.load_from == 'work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
    model = MODELS.build(cfg.model)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    memory_ids = {id(p) for n, p in model.named_parameters() if '_memory.' in n}
    assert memory_ids
    for group in optimizer.param_groups:
        if any(id(p) in memory_ids for p in group['params']):
            assert group['adam'] and HybridSGDAdam.group_lr(group) == memory_lr
        else:
            assert not group['adam'] and group['lr'] == pytest.approx(0.01)
    if arm == '-learnable-values':
        assert not model.head.write_after_warmup and model.head.warmup_value == 'logit'


def test_iem_switch_arms():
    head = Config.fromfile(f'{IEM}-memlr1e-3-merge.py').model.head
    assert (head.merge_radius, head.merge_relative) == (0.05, True)
    assert Config.fromfile(f'{IEM}-memlr1e-3-e2e.py').model.head.memory_loss_to_backbone
    assert Config.fromfile(f'{IEM}-memlr1e-3-frozen-writes.py').model.head.write_after_warmup \
        is False
    assert Config.fromfile(f'{IEM}-memlr1e-3-logit.py').model.head.warmup_value == 'logit'
    cbs = Config.fromfile(f'{IEM}-memlr1e-3-cbs.py')
    assert cbs.train_dataloader.sampler.type == 'ClassBalancedSampler'
    assert cbs.optim_wrapper.paramwise_cfg.custom_keys['head.global_memory'].fixed_lr == 1e-3


@pytest.mark.parametrize('name', ['iem_resnet10_4xb64_imagenet-lt', 'iem_resnet50_4xb64_inat2018',
                                  'iem_resnet152_4xb64_places-lt', 'iem_resnet152_4xb64_sun-lt'])
def test_iem_paper_configs_hold_memory_lr_at_1e_5(name):
    cfg = Config.fromfile(f'configs/iem/{name}.py')
    for key in ('head.global_memory', 'head.local_memory'):
        assert cfg.optim_wrapper.paramwise_cfg.custom_keys[key].fixed_lr == 1e-5
    assert cfg.model.head.num_neighbors == 50        # the paper's n, iNat included


def test_sun_lt_config_reads_a_397_class_list(tmp_path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile('configs/iem/iem_resnet152_4xb64_sun-lt.py')
    assert cfg.model.head.num_classes == 397 == cfg.data_preprocessor.num_classes
    (tmp_path / 'SUN-LT_train.txt').write_text('a/x.jpg 0\nb/y.jpg 396\nb/z.jpg 396\n')
    ds_cfg = dict(cfg.train_dataloader.dataset, data_root=str(tmp_path), pipeline=[],
                  check_files=False)  # a list without images
    ds = DATASETS.build(ds_cfg)
    assert ds.get_gt_labels().tolist() == [0, 396, 396]
    assert ds.class_counts.tolist()[396] == 2 and len(ds.class_counts) == 397


def test_mbj_paper_schedules_count_the_memory_phase():
    for name, total in (('mbj_resnext50_4xb128_imagenet-lt', 90),
                        ('mbj_resnet50_4xb128_inat2018', 90),
                        ('mbj_resnet50_4xb128_inat2018-200e', 200),
                        ('mbj_resnet152_4xb128_places-lt', 30)):
        cfg = Config.fromfile(f'configs/mbj/{name}.py')
        switch = next(h for h in cfg.custom_hooks if h.type == 'MBJMemorySwitchHook')
        assert cfg.train_cfg.max_epochs == total and switch.start_epoch == total - 10
        assert cfg.param_scheduler[0].end == total - 10


def test_iem_cbs_arm_and_its_control_share_sampler_lr_epochs_and_start():
    iem = Config.fromfile(f'{IEM}-memlr1e-3-cbs.py')
    ctrl = Config.fromfile(f'{CE_FT}-cbs.py')
    for cfg in (iem, ctrl):
        assert cfg.train_dataloader.sampler.type == 'ClassBalancedSampler'
        assert cfg.train_cfg.max_epochs == 10
        assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.01)
        assert cfg.load_from == 'work_dirs/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth'
    assert ctrl.model.head.memory_enabled is False
    assert Config.fromfile(f'{CE_FT}.py').train_dataloader.sampler.type != 'ClassBalancedSampler'


def test_mbj_memory_arms_at_lr1e_4():
    rings = Config.fromfile(f'{MBJ}-lr1e-4-perclass5.py')
    assert rings.model.head.memory.size is None and rings.model.head.memory.per_class_slots == 5
    cap = Config.fromfile(f'{MBJ}-lr1e-4-capacity.py')
    assert cap.model.head.memory_reduction == 'capacity'
    for cfg in (rings, cap):
        assert cfg.optim_wrapper.optimizer.lr == 0.0001
