"""Build the mmengine config of one benchmark stage on any dataset of :mod:`.datasets`."""
import copy
import os.path as osp
from typing import Dict, List, Optional, Union

from .arms import Stage
from .datasets import REPO, DatasetSpec

SCHEDULES = {'cpu': '-cpu', 'paper': ''}
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def resolve(overrides: Dict[str, object], spec: DatasetSpec) -> Dict[str, object]:
    """Overrides with every callable value replaced by ``value(spec)``."""
    return {k: (v(spec) if callable(v) else copy.deepcopy(v)) for k, v in overrides.items()}


def template_path(stage: Stage, schedule: str) -> str:
    if schedule not in SCHEDULES:
        raise ValueError(f'--schedule {schedule!r}: choose from {sorted(SCHEDULES)}')
    path = osp.join(REPO, stage.template.format(s=SCHEDULES[schedule]))
    if not osp.isfile(path):
        raise ValueError(f'stage {stage.key!r} has no {schedule} schedule: {path} is missing')
    return path


def _set_dataset(cfg, spec: DatasetSpec) -> None:
    from mmengine.config import Config, ConfigDict
    data = Config.fromfile(osp.join(REPO, spec.base_config))
    for loader in LOADERS:
        new = copy.deepcopy(data[loader])
        ds = new['dataset']
        for key in ('data_root', 'imb_factor', 'verify_md5', 'ann_file', 'split_file'):
            ds.pop(key, None)
        ds['type'] = spec.type
        ds.update(copy.deepcopy(spec.kwargs))
        if spec.type == 'PackedLT':
            ds.pop('imb_factor', None)
        old = cfg.get(loader) or {}
        if 'sampler' in old:               # the stage's sampler (class-balanced for cRT ...)
            new['sampler'] = copy.deepcopy(old['sampler'])
        if loader == 'train_dataloader':
            new['batch_size'] = spec.batch_size
        new['num_workers'] = 0
        new['persistent_workers'] = False
        cfg[loader] = ConfigDict(new)
    pre = copy.deepcopy(data.get('data_preprocessor', {}))
    pre['num_classes'] = spec.num_classes
    pre.update(getattr(spec, 'preprocessor', {}))
    cfg['data_preprocessor'] = ConfigDict(pre)
    cfg['val_evaluator'] = copy.deepcopy(data['val_evaluator'])
    cfg['test_evaluator'] = copy.deepcopy(data['test_evaluator'])


def _set_model(cfg, spec: DatasetSpec) -> None:
    model = cfg.model
    if 'head' in model and 'num_classes' in model.head:
        model.head.num_classes = spec.num_classes
    if spec.in_channels != 3:
        model.backbone.in_channels = spec.in_channels
    neck = model.get('neck') or {}
    if neck.get('type') == 'AFANeck':   # the map after the second ResNet-32 stage
        side = (spec.image_size + 1) // 2
        neck['feat_size'] = (side, side)


def _scale_lr(cfg, spec: DatasetSpec) -> None:
    factor = spec.batch_size / 128 * spec.lr_factor
    opt = cfg.optim_wrapper.get('optimizer')
    if opt is not None and 'lr' in opt and factor != 1:
        opt['lr'] = opt['lr'] * factor


def build_stage_config(stage: Stage, spec: DatasetSpec, schedule: str, seed: int,
                       work_dir: str, load_from: Optional[str] = None,
                       quick_indices: Optional[Dict[str, List[int]]] = None,
                       device: str = 'cpu', amp: Optional[bool] = None,
                       feature_cache: int = 0, channels_last: Optional[bool] = None,
                       compile: Union[bool, dict, None] = None):
    """The full config of ``stage`` (template + dataset + overrides + runtime).

    Args:
        stage: the stage.
        spec: the dataset.
        schedule: ``'cpu'`` or ``'paper'``.
        seed: ``randomness.seed``.
        work_dir: the run's directory.
        load_from: the parent's checkpoint.
        quick_indices: per loader, the images of the quick mode (1 epoch).
        device: ``'cpu'`` or ``'cuda'``.
        amp: mixed precision (``AmpOptimWrapper``, float16, on CUDA;
            ``AutocastOptimWrapper``, bfloat16, on CPU); ``None``: on with CUDA, and on a
            CPU where it computes bfloat16 natively (the config's ``fast_path``, see
            ``lt_plugins/engine/fast_path.py``); ``True`` on a CPU without is refused.
        feature_cache: views of a FeatureCacheHook on a cacheable stage (0: none).
        channels_last, compile: ``fast_path.channels_last`` / ``fast_path.compile``
            (``None``: the config's, channels-last on CPU and compile off by default).
    """
    from lt_plugins.engine.fast_path import fast_path_from_flags
    from mmengine.config import Config
    cfg = Config.fromfile(template_path(stage, schedule))
    _set_dataset(cfg, spec)
    _set_model(cfg, spec)
    _scale_lr(cfg, spec)
    overrides = resolve(stage.overrides, spec)
    if 'optim_wrapper.optimizer' in overrides:      # written for batch 128 like the templates
        opt = dict(overrides.pop('optim_wrapper.optimizer'))
        opt['lr'] = opt['lr'] * spec.batch_size / 128 * spec.lr_factor
        cfg.merge_from_dict({'optim_wrapper.optimizer': opt})
    if 'optim_wrapper.optimizer.lr' in overrides:
        overrides['optim_wrapper.optimizer.lr'] *= spec.batch_size / 128 * spec.lr_factor
    cfg.merge_from_dict(overrides)
    if quick_indices is not None:
        cfg.merge_from_dict({
            'train_cfg.max_epochs': 1,
            'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0,
                                     end=1)]})
        for loader, idx in quick_indices.items():
            cfg[loader]['dataset']['indices'] = list(idx)
        head = cfg.model.get('head', {})
        if head.get('type') == 'IEMHead':
            head.warmup_iters = 2
        if isinstance(head.get('head_threshold'), int):   # STG: the subset's largest class
            head.head_threshold = 10                        # is far below 100 ('median' stays)
    epochs = int(cfg.train_cfg.max_epochs)
    hooks = list(cfg.get('custom_hooks', []))
    if feature_cache and stage.cacheable:
        hooks.append(dict(type='FeatureCacheHook', num_views=int(feature_cache)))
    cfg['custom_hooks'] = hooks
    cfg.merge_from_dict({
        'work_dir': work_dir,
        'experiment_name': f'{stage.key.replace("/", "_")}-s{seed}',
        'randomness': dict(seed=int(seed), deterministic=False),
        'train_cfg.val_interval': epochs + 1,           # evaluated once, after training
        'train_cfg.val_begin': epochs + 1,
        # every epoch (only the latest kept): an interrupted stage resumes where it stopped
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=1,
                                         max_keep_ckpts=1, save_last=True),
        'default_hooks.logger.interval': 10,
        'load_from': load_from,
        'resume': False,
    })
    if amp is None and device == 'cuda':
        amp = True               # the GPU mode has always trained with AMP
    # the Runner applies it (memory banks stay float32 buffers / parameters under autocast)
    cfg['fast_path'] = fast_path_from_flags(amp, channels_last, compile,
                                            base=cfg.get('fast_path'))
    return cfg


def checkpoint_of(cfg) -> str:
    """The last checkpoint a training run of ``cfg`` writes."""
    return osp.join(cfg.work_dir, f'epoch_{int(cfg.train_cfg.max_epochs)}.pth')
