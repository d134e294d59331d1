"""Tiny DigitsLT versions of the shipped configs of every method family, for checkpoint tests.

Each family's shipped CIFAR-10-LT config is inherited as is (model, hooks, optimizer,
schedulers), only the data is swapped for DigitsLT (481 8x8 grey images, 4 iterations of 128
per epoch) and the sizes that depend on the input are adapted. ``digits_config`` writes the
config file that ``tools/train.py`` / ``tools/test.py`` or ``Runner.from_cfg`` consume.
"""
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
# post-hoc, no training: evaluated on the CE checkpoint
TAU_NORM = 'configs/baselines/taunorm_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py'
LA_POSTHOC = ('configs/baselines/logit-adjust-posthoc_resnet32-cifar_1xb128_cifar10-lt-ir100'
              '-cpu.py')

_DIGITS = """
data_preprocessor = dict(num_classes=10, mean=[78.0], std=[96.0])
model = dict(backbone=dict(in_channels=1), {model})
train_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(
    _delete_=True, type='DigitsLT', split='train', pipeline=[dict(type='PackInputs')]))
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
                  load_from: Optional[str] = None) -> str:
    """Write a DigitsLT version of the shipped ``config`` (path relative to the repo) to
    ``out_path`` and return it; ``model`` is extra keyword text for the ``model`` dict."""
    text = (f"_base_ = ['{osp.join(REPO, config)}']\n"
            + _DIGITS.format(max_epochs=max_epochs, load_from=load_from, model=model))
    with open(out_path, 'w') as f:
        f.write(text)
    return out_path


def family_config(name: str, out_dir: str, max_epochs: int = 1,
                  load_from: Optional[str] = None) -> str:
    config, model, _ = FAMILIES[name]
    return digits_config(config, osp.join(out_dir, f'{name}_digits.py'), model,
                         max_epochs=max_epochs, load_from=load_from)


def train_family(name: str, root: str, trained: dict, max_epochs: int = 1) -> str:
    """Train family ``name`` (and its predecessors, unless in ``trained``) for one epoch of
    DigitsLT under ``root`` with the Runner, as ``tools/train.py`` does; return the
    checkpoint ``{root}/{name}/epoch_1.pth`` (also stored in ``trained[name]``)."""
    import logging

    from mmengine.config import Config
    from mmengine.runner import Runner
    if name in trained:
        return trained[name]
    predecessor = FAMILIES[name][2]
    load_from = train_family(predecessor, root, trained) if predecessor else None
    cfg = Config.fromfile(family_config(name, root, max_epochs=max_epochs,
                                        load_from=load_from))
    cfg.work_dir = osp.join(root, name)
    cfg.experiment_name = f'{name}_{osp.basename(root)}'
    cfg.log_level = logging.WARNING
    Runner.from_cfg(cfg).train()
    trained[name] = osp.join(root, name, f'epoch_{max_epochs}.pth')
    return trained[name]
