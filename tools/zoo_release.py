"""Release a trained model into the model zoo: weights only, a self-contained config, and an
entry in the zoo's ``metafile.yml`` (MMPretrain's metafile conventions).

    # a finished stage of tools/benchmark/run.py (its directory holds result.json)
    python tools/zoo_release.py STAGE_DIR [--reading NAME] [--name NAME] [--zoo model_zoo]
    # any checkpoint, with its metrics (a tools/test.py --out JSON, a stage's result.json,
    # or {"test": {"top1": ..., "many": ...}, "val": {...}})
    python tools/zoo_release.py --config CONFIG --checkpoint CKPT --metrics METRICS.json \\
        --name NAME [--seed S] [--schedule paper]

Writes ``ZOO/NAME/NAME.safetensors`` (``tools/release_checkpoint.py``'s weights-only release)
and ``ZOO/NAME/NAME.py`` (the training config made self-contained: dumped, ``load_from`` and
``work_dir`` cleared, every dataset ``data_root`` back to the config's default, the reading's
inference overrides applied, ``fast_path.amp=True`` relaxed to ``'auto'`` and ``compile``
off so that it loads on any machine), and adds or updates the entry NAME in
``ZOO/metafile.yml``: ``In Collection``, ``Metadata`` (training data, epochs, schedule,
seed, commit, wall time), ``Results`` (top-1 and many / medium / few-shot top-1 on the test
and val splits), ``Weights`` and ``Config`` (paths relative to the metafile) and ``Weights
SHA256``.

Refuses to replace an entry (or a file) holding other weights unless ``--force``, and weights
over ``--max-file-mb`` or a zoo over ``--max-zoo-mb`` (the zoo is committed to git).
``tools/zoo_check.py`` verifies the entries and reproduces their numbers.
"""
import argparse
import copy
import hashlib
import importlib.util
import json
import os
import os.path as osp
import shutil
import sys
import tempfile
from typing import Dict, List, Optional

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import yaml  # noqa: E402
from mmengine.config import Config  # noqa: E402

DEFAULT_ZOO = osp.join(REPO, 'model_zoo')
METAFILE = 'metafile.yml'
MAX_FILE_MB = 10.0
MAX_ZOO_MB = 50.0
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
SPLITS = ('test', 'val')
# ShotAccuracy's keys -> metafile metric names
METRICS = {'top1': 'Top 1 Accuracy', 'many': 'Many-shot Top 1 Accuracy',
           'medium': 'Medium-shot Top 1 Accuracy', 'few': 'Few-shot Top 1 Accuracy'}
DATASET_NAMES = {'CIFAR10LT': 'CIFAR-10-LT', 'CIFAR100LT': 'CIFAR-100-LT',
                 'DigitsLT': 'DigitsLT', 'FashionMNISTLT': 'Fashion-MNIST-LT',
                 'ImageNetLT': 'ImageNet-LT', 'PlacesLT': 'Places-LT',
                 'INaturalist2018': 'iNaturalist 2018', 'PackedLT': 'PackedLT'}
BACKBONE_NAMES = {'resnet32_cifar': 'ResNet-32'}
HEADER = ('# lt_plugins model zoo, in MMPretrain\'s metafile conventions. Weights and Config\n'
          '# paths are relative to this file. Written by tools/zoo_release.py; verify and\n'
          '# reproduce the numbers with tools/zoo_check.py (see README.md here).\n')


class ZooError(RuntimeError):
    """A release or check the zoo refuses (the message says why and what to do)."""


def load_tool(name: str):
    """Import ``tools/<name>.py`` (a script, not a package) as a module."""
    path = osp.join(REPO, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'lt_tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def mib(n: float) -> str:
    return f'{n / 2**20:.2f} MiB'


# -- the metafile ----------------------------------------------------------------------
def load_metafile(zoo: str) -> dict:
    """The zoo's metafile (``{'Collections': [], 'Models': []}`` when there is none yet)."""
    path = osp.join(zoo, METAFILE)
    data = {}
    if osp.isfile(path):
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ZooError(f'{path} is not a mapping with Collections and Models; fix or remove it')
    data['Collections'] = data.get('Collections') or []
    data['Models'] = data.get('Models') or []
    return data


def write_metafile(zoo: str, data: dict) -> str:
    """Write the metafile atomically (header comment, then Collections and Models)."""
    path = osp.join(zoo, METAFILE)
    body = yaml.safe_dump({'Collections': data['Collections'], 'Models': data['Models']},
                          sort_keys=False, allow_unicode=True, width=100)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(HEADER + body)
    os.replace(tmp, path)
    return path


def find_model(data: dict, name: str) -> Optional[dict]:
    return next((m for m in data['Models'] if m.get('Name') == name), None)


# -- what the config says --------------------------------------------------------------
def _datasets(node) -> List[dict]:
    """The dataset dict ``node`` and those it wraps (``dataset`` / ``datasets``)."""
    if isinstance(node, (list, tuple)):
        return [d for value in node for d in _datasets(value)]
    if not isinstance(node, dict):
        return []
    found = [node]
    for key in ('dataset', 'datasets'):
        found += _datasets(node.get(key))
    return found


def loader_datasets(cfg: Config, loaders=LOADERS) -> List[dict]:
    out = []
    for loader in loaders:
        if isinstance(cfg.get(loader), dict) and 'dataset' in cfg[loader]:
            out += _datasets(cfg[loader]['dataset'])
    return out


def dataset_name(cfg: Config, subset_mark: bool = True) -> str:
    """``'CIFAR-10-LT IR100'`` from the test loader's dataset (``(subset)`` when it is
    restricted to ``indices``, as in ``run.py --quick``)."""
    ds = cfg.test_dataloader.dataset
    while 'type' in ds and 'dataset' in ds and isinstance(ds['dataset'], dict):
        ds = ds['dataset']   # a wrapper
    name = DATASET_NAMES.get(ds['type'], ds['type'])
    if ds['type'] == 'PackedLT':
        name = f'PackedLT {osp.splitext(osp.basename(str(ds["pack_file"])))[0]}'
    if ds.get('imb_factor') is not None:
        name += f' IR{float(ds["imb_factor"]):g}'
    if subset_mark and any('indices' in d for d in loader_datasets(cfg)):
        name += ' (subset)'
    return name


def backbone_name(cfg: Config) -> str:
    bb = cfg.model.get('backbone') or {}
    key = bb.get('model_name') or bb.get('arch') or bb.get('type') or cfg.model.get('type')
    if 'depth' in bb and not bb.get('model_name'):
        key = f'{bb["type"]}-{bb["depth"]}'
    return BACKBONE_NAMES.get(str(key), str(key))


def public_config(config: str, overrides: Optional[dict] = None):
    """The config a user tests the released weights with (see the module docstring).

    Returns ``(cfg, warnings)``; a warning names a value that still looks like a path of
    this machine.
    """
    cfg = Config.fromfile(config)
    if overrides:
        cfg.merge_from_dict(copy.deepcopy(overrides))
    default_root = cfg.get('data_root')
    for ds in loader_datasets(cfg):
        if ds.get('type') == 'PackedLT' and osp.isabs(str(ds.get('pack_file', ''))):
            ds['pack_file'] = osp.basename(ds['pack_file'])   # relative to data_root
            ds.pop('data_root', None)
        elif 'data_root' in ds:
            if default_root is not None:
                ds['data_root'] = default_root
            else:
                ds.pop('data_root')
    for key in ('work_dir', 'experiment_name'):
        cfg.pop(key, None)
    fast = cfg.get('fast_path')
    if isinstance(fast, dict):   # loads on any machine: amp=True is refused on most CPUs
        cfg.fast_path = dict(fast, amp='auto' if fast.get('amp') is True else
                             fast.get('amp', 'auto'), compile=False)
    cfg.load_from = None
    cfg.resume = False
    warnings = [f'{key} = {value!r}' for key, value in _absolute_paths(cfg.to_dict())]
    return cfg, warnings


def _absolute_paths(node, prefix: str = ''):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _absolute_paths(value, f'{prefix}.{key}' if prefix else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _absolute_paths(value, f'{prefix}[{i}]')
    elif isinstance(node, str) and osp.isabs(node) and len(node) > 1:
        yield prefix, node


def normalize_metrics(raw: dict) -> Dict[str, Dict[str, float]]:
    """``{'test': {...}, 'val': {...}}`` of the ShotAccuracy numbers (top1, many, medium,
    few) from a ``{'test': ..., 'val': ...}`` dict or a ``tools/test.py --out`` dict (test
    only, keys like ``shot/top1``)."""
    def pick(metrics: dict) -> Dict[str, float]:
        out = {}
        for key, value in metrics.items():
            short = str(key).split('/')[-1]
            if short in METRICS and value is not None:
                out[short] = float(value)
        return out

    if any(split in raw for split in SPLITS):
        out = {s: pick(raw[s]) for s in SPLITS if isinstance(raw.get(s), dict)}
    else:
        out = {'test': pick(raw)}
    if 'top1' not in out.get('test', {}):
        raise ZooError(f'the metrics hold no test top-1 (keys {sorted(raw)}); give the test '
                       'split\'s ShotAccuracy numbers (tools/test.py --out writes them)')
    return out


def results_entries(dataset: str, metrics: Dict[str, Dict[str, float]]) -> List[dict]:
    """The metafile ``Results``: one entry per split, ``Dataset`` ending in the split name."""
    out = []
    for split in SPLITS:
        if split not in metrics:
            continue
        values = {METRICS[k]: round(metrics[split][k], 2) for k in METRICS
                  if k in metrics[split]}
        out.append({'Task': 'Image Classification', 'Dataset': f'{dataset} {split}',
                    'Metrics': values})
    return out


# -- a benchmark stage -----------------------------------------------------------------
def stage_info(stage_dir: str, reading: Optional[str] = None) -> dict:
    """What a finished stage of ``tools/benchmark/run.py`` says about its model (see
    ``lt_plugins/benchmark/runner.py`` for the layout)."""
    stage_dir = osp.abspath(stage_dir)
    path = osp.join(stage_dir, 'result.json')
    if not osp.isfile(path):
        raise ZooError(f'{stage_dir} holds no result.json: not a finished stage of '
                       'tools/benchmark/run.py (wait for it, or give --config / --checkpoint '
                       '/ --metrics)')
    with open(path) as f:
        result = json.load(f)
    readings = result.get('readings', {})
    if reading is None:
        reading = 'default' if 'default' in readings or not readings else None
        if reading is None and len(readings) == 1:
            reading = next(iter(readings))
        if reading is None:
            raise ZooError(f'{path} has the readings {sorted(readings)}; choose one with '
                           '--reading (the one the benchmark reported was chosen on val)')
    if reading not in readings:
        raise ZooError(f'{path} has no reading {reading!r} (it has {sorted(readings)})')
    ckpt = result.get('checkpoint')
    if not ckpt or not osp.isfile(ckpt):
        raise ZooError(f'the checkpoint of {path}, {ckpt}, does not exist (the stage keeps '
                       'only its last epoch: re-run the stage, or release another checkpoint '
                       'with --checkpoint)')
    chain = result['stage'].split('/')
    seed_dir = stage_dir
    for _ in chain:
        seed_dir = osp.dirname(seed_dir)
    tag = schedule = None
    if osp.basename(seed_dir) == f's{result["seed"]}':
        schedule = osp.basename(osp.dirname(seed_dir))
        tag = osp.basename(osp.dirname(osp.dirname(seed_dir)))
    # wall time of the whole pipeline: this stage and the stages it starts from
    # and its epochs: a post-hoc stage (no training) reports those of the model it reads
    walls, node, resumed, epochs = [], stage_dir, {}, None
    for key in reversed(chain):
        rpath = osp.join(node, 'result.json')
        if osp.isfile(rpath):
            with open(rpath) as f:
                r = json.load(f)
            walls.append(r.get('wall_s') or 0.0)
            if r.get('resumed_from_epoch'):
                resumed[key] = r['resumed_from_epoch']
            if epochs is None and r.get('train'):
                epochs = r.get('epochs')
        node = osp.dirname(node)
    return dict(stage_dir=stage_dir, result=result, reading=reading, checkpoint=ckpt,
                config=osp.join(stage_dir, 'config.py'),
                overrides=_reading_overrides(stage_dir, result['stage'], reading),
                metrics=normalize_metrics({s: readings[reading][s] for s in SPLITS
                                           if s in readings[reading]}),
                dataset_tag=tag, schedule=schedule, seed=result.get('seed'),
                epochs=epochs, wall_s=result.get('wall_s'),
                pipeline_wall_s=sum(walls) if len(walls) == len(chain) else None,
                resumed=resumed, commit=result.get('commit'))


def _reading_overrides(stage_dir: str, stage_key: str, reading: str) -> dict:
    """The inference overrides of ``reading`` (the stage's task.json, else the arms)."""
    task_path = osp.join(stage_dir, 'task.json')
    if osp.isfile(task_path):
        with open(task_path) as f:
            readings = json.load(f).get('readings', {})
        if reading in readings:
            return readings[reading]
    if reading == 'default':
        return {}
    from lt_plugins.benchmark import ARMS
    for arm in ARMS.values():
        for stage in arm.stage.chain():
            if stage.key == stage_key and reading in stage.readings:
                overrides = stage.readings[reading]
                if any(callable(v) for v in overrides.values()):
                    raise ZooError(f'reading {reading!r} of {stage_key} depends on the dataset '
                                   'and its task.json no longer lists it: re-run the reading '
                                   '(tools/benchmark/run.py adds it without training)')
                return copy.deepcopy(overrides)
    raise ZooError(f'no overrides known for reading {reading!r} of stage {stage_key}')


def default_name(cfg: Config, info: dict) -> str:
    bb = str((cfg.model.get('backbone') or {}).get('model_name')
             or backbone_name(cfg)).replace('_', '-').lower()
    tag = info['dataset_tag'].replace('imb_factor', 'ir')
    name = (f'{info["result"]["stage"].replace("/", "+")}_{bb}_{tag}_'
            f'{info["schedule"]}-s{info["seed"]}')
    if info['reading'] != 'default':
        name += f'_{info["reading"]}'
    return name


# -- the release -----------------------------------------------------------------------
def _zoo_bytes(zoo: str, skip: List[str]) -> int:
    skip = {osp.abspath(p) for p in skip}
    total = 0
    for root, dirs, files in os.walk(zoo):
        dirs[:] = [d for d in dirs if not d.startswith('.zoo-tmp')]
        for name in files:
            path = osp.abspath(osp.join(root, name))
            if path not in skip:
                total += osp.getsize(path)
    return total


def materialize(release_tool, config: str, checkpoint: str, out: str) -> str:
    """Write to ``out`` the state of ``config``'s model after it loads ``checkpoint`` as
    ``load_from`` does (non-strict, through the model's load hooks), with the checkpoint's
    meta: the weights a post-hoc stage evaluates (e.g. tau-norm reading a CE checkpoint)."""
    import torch
    from lt_plugins.compat import load_from_local
    model = release_tool.build_model(config)
    ckpt = load_from_local(checkpoint, map_location='cpu')
    state = {(k[len('module.'):] if k.startswith('module.') else k): v
             for k, v in ckpt.get('state_dict', ckpt).items()}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ZooError(f'{checkpoint} does not fit the model of {config} even as load_from '
                       f'reads it (missing {result.missing_keys[:6]}, unexpected '
                       f'{result.unexpected_keys[:6]}); release the stage that trained it')
    torch.save({'state_dict': model.state_dict(), 'meta': ckpt.get('meta', {})}, out)
    return out


def release_to_zoo(config: str, checkpoint: str, metrics: Dict[str, Dict[str, float]],
                   name: str, zoo: str = DEFAULT_ZOO, metadata: Optional[dict] = None,
                   collection: Optional[str] = None, overrides: Optional[dict] = None,
                   force: bool = False, max_file_mb: float = MAX_FILE_MB,
                   max_zoo_mb: float = MAX_ZOO_MB, log=print, post_hoc: bool = False) -> dict:
    """Release ``checkpoint`` (trained with ``config``) as ``name`` into ``zoo``; returns the
    metafile entry. ``post_hoc``: ``config`` only reads ``checkpoint`` (a stage without
    training): the weights released are its model's after loading it. See the module
    docstring."""
    if not name or any(c in name for c in '/\\ ') or name.startswith('.'):
        raise ZooError(f'--name {name!r}: a model name is one path component without spaces')
    release_tool = load_tool('release_checkpoint')
    zoo = osp.abspath(zoo)
    os.makedirs(zoo, exist_ok=True)
    data = load_metafile(zoo)
    cfg, warnings = public_config(config, overrides)
    dataset = dataset_name(cfg)
    collection = collection or f'lt_plugins {dataset_name(cfg, False)} {backbone_name(cfg)}'
    model_dir = osp.join(zoo, name)
    weights_rel, config_rel = f'{name}/{name}.safetensors', f'{name}/{name}.py'
    weights_path, config_path = osp.join(zoo, weights_rel), osp.join(zoo, config_rel)
    tmp = tempfile.mkdtemp(prefix='.zoo-tmp-', dir=zoo)
    try:
        source = checkpoint
        if post_hoc:      # named like the checkpoint: the release's meta names its source
            os.makedirs(osp.join(tmp, 'read'))
            source = materialize(release_tool, config, checkpoint,
                                 osp.join(tmp, 'read', osp.basename(checkpoint)))
        summary = release_tool.release(config, source, osp.join(tmp, f'{name}.safetensors'),
                                       'safetensors')
        new_weights = summary['out']
        sha = sha256_file(new_weights)
        size = osp.getsize(new_weights)
        if size > max_file_mb * 2**20:
            raise ZooError(f'{name}: the released weights are {mib(size)}, over the per-file '
                           f'limit of {max_file_mb:g} MiB (--max-file-mb). The zoo is committed '
                           'to git; host larger weights elsewhere and link them instead.')
        existing = find_model(data, name)
        old_sha = None
        if existing is not None:
            old_sha = existing.get('Weights SHA256')
        elif osp.isfile(weights_path):
            old_sha = sha256_file(weights_path)
        if old_sha is not None and old_sha != sha and not force:
            raise ZooError(f'{osp.join(zoo, METAFILE)} already holds {name} with other weights '
                           f'(sha256 {old_sha[:12]}... there, {sha[:12]}... now). Pass --force '
                           'to replace it, or --name for a new entry.')
        where = (osp.relpath(zoo, REPO) + '/' if zoo.startswith(REPO + os.sep) else 'ZOO/')
        header = (f'# Released by tools/zoo_release.py with {name}.safetensors (next to this\n'
                  '# file). Test it from the repository root with\n'
                  f'#   python tools/test.py {where}{config_rel} {where}{weights_rel}\n'
                  f'# or python tools/zoo_check.py {name} --data-root DIR\n'
                  '# (data_root below is the config\'s default; pass the dataset\'s folder).\n')
        cfg_tmp = osp.join(tmp, f'{name}.py')
        cfg.dump(cfg_tmp)
        with open(cfg_tmp) as f:
            text = f.read()
        with open(cfg_tmp, 'w') as f:
            f.write(header + text)
        replaced = [weights_path, config_path]
        total = _zoo_bytes(zoo, replaced + [new_weights, cfg_tmp]) + size + osp.getsize(cfg_tmp)
        if total > max_zoo_mb * 2**20:
            raise ZooError(f'{name}: the zoo would hold {mib(total)}, over its limit of '
                           f'{max_zoo_mb:g} MiB (--max-zoo-mb); remove an entry first or host '
                           'the weights elsewhere.')
        model = release_tool.build_model(config)
        params = sum(p.numel() for p in model.parameters())
        os.makedirs(model_dir, exist_ok=True)
        os.replace(new_weights, weights_path)
        os.chmod(weights_path, 0o644)
        os.replace(cfg_tmp, config_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    meta = {'Training Data': dataset, 'Architecture': [backbone_name(cfg)],
            'Parameters': int(params)}
    trained_fast = Config.fromfile(config).get('fast_path')
    if isinstance(trained_fast, dict):   # the released config's may differ (see above)
        meta['Training Fast Path'] = dict(trained_fast)
    meta.update({k: v for k, v in (metadata or {}).items() if v is not None})
    entry = {'Name': name, 'In Collection': collection, 'Metadata': meta,
             'Results': results_entries(dataset, metrics), 'Weights': weights_rel,
             'Weights SHA256': sha, 'Config': config_rel}
    if find_model(data, name) is not None:
        data['Models'] = [entry if m.get('Name') == name else m for m in data['Models']]
    else:
        data['Models'].append(entry)
    if not any(c.get('Name') == collection for c in data['Collections']):
        entry_c = {'Name': collection,
                   'Metadata': {'Training Data': dataset_name(cfg, False),
                                'Architecture': [backbone_name(cfg)]}}
        if osp.isfile(osp.join(zoo, 'README.md')):
            entry_c['README'] = 'README.md'
        data['Collections'].append(entry_c)
    write_metafile(zoo, data)
    for warning in warnings:
        log(f'warning: {config_rel} still holds a path of this machine: {warning}')
    log(f'released {name}: {weights_rel} ({mib(size)}, sha256 {sha[:12]}...), {config_rel}; '
        f'{"replaced" if old_sha not in (None, sha) else "entry"} in {osp.join(zoo, METAFILE)}')
    return entry


def release_stage(stage_dir: str, zoo: str = DEFAULT_ZOO, reading: Optional[str] = None,
                  name: Optional[str] = None, collection: Optional[str] = None,
                  force: bool = False, max_file_mb: float = MAX_FILE_MB,
                  max_zoo_mb: float = MAX_ZOO_MB, log=print) -> dict:
    """Release a finished stage of ``tools/benchmark/run.py``; returns the metafile entry."""
    info = stage_info(stage_dir, reading)
    cfg = Config.fromfile(info['config'])
    if name is None:
        if info['dataset_tag'] is None:
            raise ZooError(f'{stage_dir} is not in the layout of tools/benchmark/run.py '
                           '(<dataset>/<schedule>/s<seed>/<stages>): give --name')
        name = default_name(cfg, info)
    commit, commit_at = info['commit'], 'training'
    if commit is None:
        from lt_plugins.benchmark.worker import git_commit
        commit, commit_at = git_commit(), 'release (the run did not record one)'
    metadata = {
        'Epochs': info['epochs'],
        'Batch Size': cfg.train_dataloader.get('batch_size'),
        'Training Pipeline': info['result']['stage'],
        'Schedule': info['schedule'],
        'Seed': info['seed'],
        'Reading': info['reading'],
        'Commit': commit,
        'Commit Recorded At': commit_at,
        'Wall Time (s)': None if info['wall_s'] is None else round(info['wall_s'], 1),
        'Pipeline Wall Time (s)': (None if info['pipeline_wall_s'] is None
                                   else round(info['pipeline_wall_s'], 1)),
        'Resumed From Epoch': info['resumed'] or None,
    }
    return release_to_zoo(info['config'], info['checkpoint'], info['metrics'], name, zoo,
                          metadata, collection, info['overrides'], force, max_file_mb,
                          max_zoo_mb, log, post_hoc=not info['result'].get('train', True))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('stage_dir', nargs='?', help='a finished stage of tools/benchmark/run.py')
    p.add_argument('--config', help='the config CHECKPOINT was trained with (without STAGE_DIR)')
    p.add_argument('--checkpoint', help='the checkpoint to release (without STAGE_DIR)')
    p.add_argument('--metrics', help='JSON of its numbers (without STAGE_DIR)')
    p.add_argument('--reading', help='the stage reading to release (default: "default")')
    p.add_argument('--name', help='the entry name (default, for a stage: '
                   'STAGES_BACKBONE_DATASET_SCHEDULE-sSEED)')
    p.add_argument('--collection', help='the metafile collection (default: lt_plugins '
                   'DATASET BACKBONE)')
    p.add_argument('--zoo', default=DEFAULT_ZOO, help='zoo folder (default: model_zoo/)')
    p.add_argument('--force', action='store_true', help='replace an entry with other weights')
    p.add_argument('--max-file-mb', type=float, default=MAX_FILE_MB)
    p.add_argument('--max-zoo-mb', type=float, default=MAX_ZOO_MB)
    p.add_argument('--seed', type=int, help='metadata: the training seed (explicit mode; '
                   'default: the config\'s randomness.seed)')
    p.add_argument('--epochs', type=int, help='metadata: epochs (default: the config\'s)')
    p.add_argument('--schedule', help='metadata: the schedule (e.g. paper, cpu)')
    p.add_argument('--commit', help='metadata: the commit that trained it (default: HEAD now)')
    p.add_argument('--wall-s', type=float, help='metadata: training wall time in seconds')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    explicit = (args.config, args.checkpoint, args.metrics)
    try:
        if args.stage_dir:
            if any(explicit):
                raise ZooError('give either STAGE_DIR or --config / --checkpoint / --metrics')
            return release_stage(args.stage_dir, args.zoo, args.reading, args.name,
                                 args.collection, args.force, args.max_file_mb,
                                 args.max_zoo_mb)
        if not all(explicit) or not args.name:
            raise ZooError('give STAGE_DIR, or all of --config, --checkpoint, --metrics and '
                           '--name')
        with open(args.metrics) as f:
            raw = json.load(f)
        if 'readings' in raw:      # a stage's result.json given as the metrics
            reading = args.reading or 'default'
            raw = raw['readings'][reading]
        cfg = Config.fromfile(args.config)
        commit, commit_at = args.commit, 'given at release'
        if commit is None:
            from lt_plugins.benchmark.worker import git_commit
            commit, commit_at = git_commit(), 'release (none given)'
        metadata = {'Epochs': args.epochs or int(cfg.train_cfg.max_epochs),
                    'Batch Size': cfg.train_dataloader.get('batch_size'),
                    'Schedule': args.schedule,
                    'Seed': args.seed if args.seed is not None
                    else (cfg.get('randomness') or {}).get('seed'),
                    'Commit': commit, 'Commit Recorded At': commit_at,
                    'Wall Time (s)': args.wall_s}
        return release_to_zoo(args.config, args.checkpoint, normalize_metrics(raw), args.name,
                              args.zoo, metadata, args.collection, None, args.force,
                              args.max_file_mb, args.max_zoo_mb)
    except ZooError as err:
        raise SystemExit(f'zoo_release: {err}')


if __name__ == '__main__':
    main()
