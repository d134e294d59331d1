"""Recompute the BatchNorm statistics of one part of a trained model on real data only.

In AFA + LBLS training, real and generated features share the training-mode BatchNorm of the
backbone's last stage (the neck sits before it), so the running statistics used at test time
and by cRT are about half generated. This tool takes a trained checkpoint and replaces the
``running_mean`` / ``running_var`` of every BatchNorm layer under ``--module`` (default
``backbone.tail``, the last stage of ``TimmSplitBackbone``) by the exact mean and unbiased
variance of that layer's input over the real training images, with the model in eval mode
(no feature generation). The layers are done one after another in the order the forward
pass reaches them, each with the already recomputed statistics of the earlier ones, so every
layer's statistics are those of the inputs it sees at inference; one pass over the data per
layer (the forward stops at the layer being measured). Everything else in the checkpoint is
kept::

    python tools/analysis/afa_recompute_bn.py \\
        configs/afa/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py \\
        work_dirs/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30.pth \\
        --out work_dirs/afa_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu/epoch_30_realbn.pth

then test the new checkpoint with ``tools/test.py`` and run the cRT config with
``load_from=<new checkpoint>``. Images go through the test pipeline (``--pipeline train`` for
the training augmentation, drawn once per pass).
"""
import argparse
import os.path as osp
import sys
from typing import Callable, Dict, Iterable, List, Optional

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.runner import CheckpointLoader
from torch.nn.modules.batchnorm import _BatchNorm

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..'))
import lt_plugins  # noqa: E402,F401


class _Stop(Exception):
    """Raised by the measuring hook: the rest of the forward pass is not needed."""


def bn_layers_in_call_order(module: nn.Module, forward: Callable[[object], object],
                            batch) -> List[str]:
    """Names (relative to ``module``) of its BatchNorm layers in the order ``forward``
    reaches them on one batch; layers never reached are left out."""
    names = {m: n for n, m in module.named_modules() if isinstance(m, _BatchNorm)}
    if not names:
        raise ValueError(f'{type(module).__name__} has no BatchNorm layer to recompute.')
    order: List[str] = []
    handles = [m.register_forward_pre_hook(
        lambda m, inp: order.append(names[m]) if names[m] not in order else None)
        for m in names]
    try:
        with torch.no_grad():
            forward(batch)
    finally:
        for h in handles:
            h.remove()
    return order


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, module: nn.Module, forward: Callable[[object], object],
                       batches: Iterable) -> Dict[str, dict]:
    """Set the running statistics of every BatchNorm layer of ``module`` to the exact mean and
    unbiased variance of its input over ``batches``, model in eval mode, layer by layer.

    Args:
        model (nn.Module): the whole model (put in eval mode).
        module (nn.Module): the part whose BatchNorm layers are recomputed.
        forward (callable): runs ``model`` on one batch.
        batches (iterable): re-iterable data (one pass per layer).

    Returns:
        dict: per layer name, the ``old_mean`` / ``new_mean`` / ``old_var`` / ``new_var``.
    """
    model.eval()
    batches = list(batches) if not hasattr(batches, '__len__') else batches
    if len(batches) == 0:
        raise ValueError('recompute_bn_stats: no data.')
    order = bn_layers_in_call_order(module, forward, next(iter(batches)))
    layers = dict(module.named_modules())
    report = {}
    for name in order:
        bn = layers[name]
        acc = dict(s=0.0, ss=0.0, n=0)

        def measure(m, inp):
            x = inp[0].detach().double().transpose(0, 1).reshape(m.num_features, -1)
            acc['s'] = acc['s'] + x.sum(1)
            acc['ss'] = acc['ss'] + (x * x).sum(1)
            acc['n'] += x.shape[1]
            raise _Stop

        handle = bn.register_forward_pre_hook(measure)
        try:
            for batch in batches:
                try:
                    forward(batch)
                except _Stop:
                    pass
        finally:
            handle.remove()
        n = acc['n']
        if n < 2:
            raise ValueError(f'BatchNorm {name}: {n} values per channel; need at least 2.')
        mean = acc['s'] / n
        var = (acc['ss'] - n * mean * mean) / (n - 1)
        report[name] = dict(old_mean=bn.running_mean.clone(), old_var=bn.running_var.clone(),
                            new_mean=mean.to(bn.running_mean), new_var=var.to(bn.running_var))
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var.clamp_min(0))
    return report


def rewrite_checkpoint(src: str, dst: str, model: nn.Module, module_name: str) -> List[str]:
    """Copy ``src`` to ``dst`` with the BatchNorm statistics under ``module_name`` taken from
    ``model``; returns the replaced keys."""
    # weights-only with lt_plugins' allow-list (LT_PLUGINS_TRUSTED_CHECKPOINTS opts out)
    ckpt = CheckpointLoader.load_checkpoint(src, map_location='cpu', logger='silent')
    state = ckpt['state_dict'] if 'state_dict' in ckpt else ckpt
    replaced = []
    module = model.get_submodule(module_name)
    for name, m in module.named_modules():
        if isinstance(m, _BatchNorm):
            for buf in ('running_mean', 'running_var'):
                key = f'{module_name}.{name}.{buf}' if name else f'{module_name}.{buf}'
                if key not in state:
                    raise KeyError(f'{src} has no {key}: is it a checkpoint of this config?')
                state[key] = getattr(m, buf).detach().clone().to(state[key])
                replaced.append(key)
    torch.save(ckpt, dst)
    return replaced


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description='Recompute the last stage\'s BatchNorm '
                                'statistics on real training images only.')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out', required=True, help='the new checkpoint')
    p.add_argument('--module', default='backbone.tail',
                   help='the part whose BatchNorm layers are recomputed')
    p.add_argument('--pipeline', choices=['test', 'train'], default='test')
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--max-batches', type=int, default=None, help='(quick checks only)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model_cfg = cfg.model.copy()
    model_cfg['data_preprocessor'] = cfg.get('data_preprocessor',
                                             model_cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg)
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=False)
    model.to(args.device).eval()
    try:
        module = model.get_submodule(args.module)
    except AttributeError as err:
        raise ValueError(f'--module {args.module}: not a submodule of '
                         f'{type(model).__name__} ({err}).') from None
    ds_cfg = cfg.train_dataloader.dataset.copy()
    if args.pipeline == 'test':
        ds_cfg['pipeline'] = cfg.test_dataloader.dataset.pipeline
    dataset = DATASETS.build(ds_cfg)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=False,
                                         collate_fn=pseudo_collate, num_workers=0)
    batches = []
    for i, batch in enumerate(loader):
        if args.max_batches is not None and i >= args.max_batches:
            break
        batches.append(batch)

    def forward(batch):
        data = model.data_preprocessor(batch, False)
        return model.extract_feat(data['inputs'])

    report = recompute_bn_stats(model, module, forward, batches)
    replaced = rewrite_checkpoint(args.checkpoint, args.out, model, args.module)
    n_img = sum(len(b['inputs']) for b in batches)
    print(f'recomputed {len(report)} BatchNorm layers of {args.module} on {n_img} real '
          f'training images; wrote {len(replaced)} buffers to {args.out}')
    for name, r in report.items():
        print(f'  {name}: |mean shift| {float((r["new_mean"] - r["old_mean"]).abs().mean()):.4f}'
              f'  var ratio new/old {float((r["new_var"] / r["old_var"]).mean()):.3f}')
    return dict(layers=list(report), replaced=replaced, images=n_img)


if __name__ == '__main__':
    main()
