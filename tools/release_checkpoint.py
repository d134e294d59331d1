"""Strip a training checkpoint to what inference needs, for release.

    python tools/release_checkpoint.py CONFIG CHECKPOINT [--out FILE]
        [--format {auto,safetensors,pth}]

Keeps the model's state dict -- weights and the buffers inference reads (IEM's memories,
the heads' class counts, ...) -- and from ``meta`` the training class counts
(``lt_class_counts``, which ``ClassCountsHook`` hands to ``ShotAccuracy`` and the heads in
``tools/test.py``), ``dataset_meta`` and provenance (epoch, iter, experiment name).

Drops what only training needs: the optimizer, parameter schedulers and message hub, any
other top-level entry (an EMA run's ``state_dict`` already holds the averaged weights), and
the state of the training-only modules in :data:`TRAINING_ONLY_MODULES` (MBJ's feature
queues and STG's dictionary, both ``RebalancedFIFOMemory``; STG's ``SampleStatSmoother``).
The dropped module prefixes are listed in ``meta['lt_dropped_training_state']``.

Writes safetensors when the package is installed (``--format auto``, the default; the meta
travels as JSON in the file's metadata) or a ``.pth`` of plain tensors and plain Python meta,
which ``torch.load(weights_only=True)`` reads without any allow-list. Both load with
``tools/test.py CONFIG RELEASED`` and ``load_from``. CONFIG is the config the checkpoint was
trained with: its model says which modules are training-only and must match the state dict.
Prints the sizes before and after.
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import lt_plugins  # noqa: F401  (registration and the weights-only loader)
from lt_plugins.compat import SAFETENSORS_META_KEY, load_from_local
from lt_plugins.memory import RebalancedFIFOMemory
from lt_plugins.models.stg import SampleStatSmoother

# module type -> why its state is training-only
TRAINING_ONLY_MODULES = {
    RebalancedFIFOMemory: 'MBJ feature queue / STG dictionary: read by the training losses only',
    SampleStatSmoother: 'STG per-sample statistics smoother: stage-2 training only',
}
KEEP_META = ('lt_class_counts', 'dataset_meta', 'epoch', 'iter', 'experiment_name',
             'mmengine_version')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Strip a checkpoint for release (lt_plugins)')
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='training checkpoint (.pth)')
    parser.add_argument('--out', help='output file (default: CHECKPOINT stem + "_release" '
                        '+ .safetensors or .pth)')
    parser.add_argument('--format', choices=['auto', 'safetensors', 'pth'], default='auto',
                        help='auto: by the --out extension, else safetensors when installed, '
                        'else .pth')
    return parser.parse_args()


def build_model(config: str) -> torch.nn.Module:
    """CONFIG's model, without pretrained weights (the checkpoint brings the weights)."""
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if isinstance(model_cfg.get('backbone'), dict) and model_cfg.backbone.get('pretrained'):
        model_cfg.backbone = dict(model_cfg.backbone, pretrained=False)
    return MODELS.build(model_cfg)


def training_only_prefixes(model: torch.nn.Module) -> List[Tuple[str, str]]:
    """``(module name, reason)`` of every training-only sub-module of ``model``."""
    found = []
    for name, module in model.named_modules():
        for kind, reason in TRAINING_ONLY_MODULES.items():
            if isinstance(module, kind) and not any(name.startswith(f'{p}.') for p, _ in found):
                found.append((name, reason))
    return found


def split_state_dict(state_dict: dict, model: torch.nn.Module) -> Tuple[dict, dict, list]:
    """``(kept, dropped, prefixes)``; refuses a state dict whose keys differ from the
    model's (a release must load into the model it is released for)."""
    expected = set(model.state_dict())
    missing, unexpected = expected - set(state_dict), set(state_dict) - expected
    if missing or unexpected:
        raise ValueError(
            'The checkpoint does not fit the config\'s model: missing keys '
            f'{sorted(missing)[:10]}, unexpected keys {sorted(unexpected)[:10]}. Pass the '
            'config the checkpoint was trained with.')
    prefixes = training_only_prefixes(model)
    kept, dropped = {}, {}
    for key, value in state_dict.items():
        training_only = any(key.startswith(f'{p}.') for p, _ in prefixes)
        (dropped if training_only else kept)[key] = value
    return kept, dropped, prefixes


def plain(value):
    """JSON-compatible copy of a meta value (numpy scalars and arrays become Python)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f'meta value of type {type(value).__name__} cannot be released: '
                    f'{value!r}')


def nbytes(obj) -> int:
    """Bytes of the tensors and arrays inside ``obj``."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    if hasattr(obj, '__dict__'):
        return nbytes(vars(obj))
    return 0


def release(config: str, checkpoint: str, out: str = None, fmt: str = 'auto') -> Dict:
    """Write the release file; returns a summary (paths, format, sizes, dropped parts)."""
    has_safetensors = importlib.util.find_spec('safetensors') is not None
    if fmt == 'auto' and out is not None:
        fmt = 'safetensors' if out.endswith('.safetensors') else 'pth'
    elif fmt == 'auto':
        fmt = 'safetensors' if has_safetensors else 'pth'
    if out is not None and out.endswith('.safetensors') != (fmt == 'safetensors'):
        raise ValueError(f'--out {out} and --format {fmt} disagree: the loader reads a file '
                         'as safetensors exactly when its name ends in .safetensors.')
    if fmt == 'safetensors' and not has_safetensors:
        raise ImportError('--format safetensors needs the safetensors package: '
                          'pip install safetensors (or use --format pth).')
    if out is None:
        stem = osp.splitext(checkpoint)[0]
        out = f'{stem}_release.{fmt}'
    if osp.abspath(out) == osp.abspath(checkpoint):
        raise ValueError(f'--out {out} is the input checkpoint; choose another file.')

    ckpt = load_from_local(checkpoint, map_location='cpu')
    state_dict = ckpt.get('state_dict', ckpt)
    kept, dropped, prefixes = split_state_dict(state_dict, build_model(config))
    meta = {k: plain(v) for k, v in ckpt.get('meta', {}).items() if k in KEEP_META}
    meta.update(lt_released_from=osp.basename(checkpoint),
                lt_plugins_version=lt_plugins.__version__,
                lt_dropped_training_state=[p for p, _ in prefixes])
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in kept.items()}

    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    if fmt == 'safetensors':
        from safetensors.torch import save_file
        save_file(tensors, out, metadata={SAFETENSORS_META_KEY: json.dumps(meta)})
    else:
        torch.save({'state_dict': tensors, 'meta': meta}, out)

    sections = {k: nbytes(v) for k, v in ckpt.items() if k not in ('state_dict', 'meta')}
    return dict(
        checkpoint=checkpoint, out=out, format=fmt,
        size_before=osp.getsize(checkpoint), size_after=osp.getsize(out),
        kept_tensor_bytes=nbytes(kept), dropped_state_bytes=nbytes(dropped),
        dropped_modules=prefixes, dropped_sections=sections)


def mib(n: int) -> str:
    return f'{n / 2**20:.2f} MiB'


def main() -> None:
    args = parse_args()
    s = release(args.config, args.checkpoint, args.out, args.format)
    print(f'released {s["out"]} ({s["format"]})')
    print(f'  size: {mib(s["size_before"])} -> {mib(s["size_after"])} '
          f'({100 * s["size_after"] / s["size_before"]:.1f}%)')
    print(f'  kept: state dict {mib(s["kept_tensor_bytes"])}, meta '
          f'({", ".join(KEEP_META)} where present)')
    for name, size in s['dropped_sections'].items():
        print(f'  dropped: {name} ({mib(size)} of tensors/arrays)')
    for prefix, reason in s['dropped_modules']:
        print(f'  dropped: {prefix}.* ({reason})')
    if s['dropped_modules']:
        print(f'  training-only state dropped: {mib(s["dropped_state_bytes"])}')


if __name__ == '__main__':
    main()
