"""Tiny DigitsLT versions of the shipped configs of every method family, for checkpoint tests.

Each family's shipped CIFAR-10-LT config is inherited as is (model, hooks, optimizer,
schedulers), only the data is swapped for DigitsLT (481 8x8 grey images, 4 iterations of 128
per epoch) and the sizes that depend on the input are adapted. ``digits_config`` writes the
config file that ``tools/train.py`` / ``tools/test.py`` or ``Runner.from_cfg`` consume.
"""
import os
import os.path as osp
from typing import Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# name -> (shipped config, model overrides (keyword text), predecessor family whose
# checkpoint is load_from)
FAMILIES = {
    'ce': ('configs/baselines/ce_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '', None),
    'crt': ('configs/baselines/crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '', 'ce'),
    'lws': ('configs/baselines/lws_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '', 'ce'),
    'mbj': ('configs/mbj/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '', 'ce'),
    # 8x8 inputs end in a 2x2 map (9 regions up to 2x2); write the memories from step 1.
    'iem': ('configs/iem/iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
            'head=dict(local_regions=4, warmup_iters=1)', None),
    'stg1': ('configs/stg/stg-stage1_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '', None),
    'stg2': ('configs/stg/stg-stage2_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '',
             'stg1'),
    'stg3': ('configs/stg/stg-stage3_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '',
             'stg2'),
    # after the second stage an 8x8 input is 4x4
    'afa': ('configs/afa/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
            'neck=dict(feat_size=(4, 4))', None),
    'afa-crt': ('configs/afa/afa-crt_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
                'neck=dict(feat_size=(4, 4))', 'afa'),
    # a loss with a class-counts buffer; weight balancing's stage 2 (MaxNorm radius in meta)
    'balanced-softmax': ('configs/baselines/balanced-softmax_resnet32-cifar_1xb128_cifar10-lt'
                         '-ir100-cpu.py', '', None),
    'wb1': ('configs/baselines/weight-balancing-stage1_resnet32-cifar_1xb128_cifar10-lt-ir100'
            '-cpu.py', '', None),
    'wb2': ('configs/baselines/weight-balancing_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
            '', 'wb1'),
}
# Every shipped CPU family for the resume tests: FAMILIES plus LDAM-DRW, RIDE and its router,
# and composed heads; the last item is config text that switches the schedules (DRW, LBLS,
# memory term) on from epoch 1 (0-based), so a 2-epoch run exercises them.
_DRW = "custom_hooks = [dict(type='ClassCountsHook'), dict(type='DRWHook', start_epoch=1)]"
_LBLS = ("custom_hooks = [dict(type='ClassCountsHook'), "
         "dict(type='LBLSHook', start=1, weight=2.0, by_epoch=True)]")
RESUME_FAMILIES = {name: (cfg, model, pre, '') for name, (cfg, model, pre) in FAMILIES.items()}
RESUME_FAMILIES['afa'] = RESUME_FAMILIES['afa'][:3] + (_LBLS, )
RESUME_FAMILIES.update({
    'ldam-drw': ('configs/baselines/ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '',
                 None, _DRW),
    'ride': ('configs/ride/ride_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '', None, _DRW),
    'ride-ea': ('configs/ride/ride-ea_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py', '',
                'ride', _DRW),
    'afa-mbj': ('configs/compose/afa-mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py',
                'neck=dict(feat_size=(4, 4))', None,
                "custom_hooks = [dict(type='ClassCountsHook'), dict(type='LBLSHook', start=1, "
                "weight=2.0, by_epoch=True), dict(type='MBJMemorySwitchHook', start_epoch=1)]"),
    'ride-gaussian': ('configs/compose/ride-gaussian_resnet32-cifar_1xb128_cifar10-lt-ir100-'
                      'cpu.py', '', 'ride', ''),
    'crt-iem-read': ('configs/compose/crt-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100-'
                     'cpu.py', '', 'ce', ''),
})
# random data augmentation for the resume tests (the checkpoint tests use none)
AUGMENTED_PIPELINE = ("[dict(type='RandomCrop', crop_size=8, padding=1), "
                      "dict(type='RandomFlip', prob=0.5, direction='horizontal'), "
                      "dict(type='PackInputs')]")

# post-hoc, no training: evaluated on the CE checkpoint
TAU_NORM = 'configs/baselines/taunorm_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py'
LA_POSTHOC = ('configs/baselines/logit-adjust-posthoc_resnet32-cifar_1xb128_cifar10-lt-ir100'
              '-cpu.py')

_DIGITS = """
data_preprocessor = dict(num_classes=10, mean=[78.0], std=[96.0])
model = dict(backbone=dict(in_channels=1), {model})
train_dataloader = dict(num_workers={num_workers}, persistent_workers={persistent},
                        dataset=dict(_delete_=True, type='DigitsLT', split='train',
                                     pipeline={train_pipeline}))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(
    _delete_=True, type='DigitsLT', split='val', pipeline=[dict(type='PackInputs')]))
test_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(
    _delete_=True, type='DigitsLT', split='test', pipeline=[dict(type='PackInputs')]))
train_cfg = dict(max_epochs={max_epochs}, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
randomness = dict(seed=0, deterministic=False)
load_from = {load_from!r}
"""


def digits_config(config: str, out_path: str, model: str = '', max_epochs: int = 1,
                  load_from: Optional[str] = None, num_workers: int = 0,
                  train_pipeline: str = "[dict(type='PackInputs')]", extra: str = '') -> str:
    """Write a DigitsLT version of the shipped ``config`` (path relative to the repo) to
    ``out_path`` and return it; ``model`` is extra keyword text for the ``model`` dict,
    ``extra`` config text appended at the end (``persistent_workers`` follows
    ``num_workers > 0``)."""
    text = (f"_base_ = ['{osp.join(REPO, config)}']\n"
            + _DIGITS.format(max_epochs=max_epochs, load_from=load_from, model=model,
                             num_workers=num_workers, persistent=num_workers > 0,
                             train_pipeline=train_pipeline) + extra + '\n')
    with open(out_path, 'w') as f:
        f.write(text)
    return out_path


def family_config(name: str, out_dir: str, max_epochs: int = 1,
                  load_from: Optional[str] = None) -> str:
    config, model, _, extra = RESUME_FAMILIES[name]
    return digits_config(config, osp.join(out_dir, f'{name}_digits.py'), model,
                         max_epochs=max_epochs, load_from=load_from, extra=extra)


def train_family(name: str, root: str, trained: dict, max_epochs: int = 1) -> str:
    """Train family ``name`` (and its predecessors, unless in ``trained``) for one epoch of
    DigitsLT under ``root`` with the Runner, as ``tools/train.py`` does; return the
    checkpoint ``{root}/{name}/epoch_1.pth`` (also stored in ``trained[name]``)."""
    import logging

    from mmengine.config import Config
    from mmengine.runner import Runner
    if name in trained:
        return trained[name]
    predecessor = RESUME_FAMILIES[name][2]
    load_from = train_family(predecessor, root, trained) if predecessor else None
    os.makedirs(root, exist_ok=True)
    cfg = Config.fromfile(family_config(name, root, max_epochs=max_epochs,
                                        load_from=load_from))
    cfg.work_dir = osp.join(root, name)
    cfg.experiment_name = f'{name}_{osp.basename(root)}'
    cfg.log_level = logging.WARNING
    Runner.from_cfg(cfg).train()
    trained[name] = osp.join(root, name, f'epoch_{max_epochs}.pth')
    return trained[name]
