"""Arms of the benchmark: each method's stages and readings, registered by name.

A :class:`Stage` is one training run (or, with ``train=False``, an evaluation of its
parent's checkpoint) built from a template config of ``configs/`` plus overrides; stages
chain through ``parent`` (``load_from`` = the parent's last checkpoint) and a stage is run
once per (dataset, seed, chain of recipes) whatever the number of arms that use it: the CE
stage 1 serves CE, cRT, LWS, tau-norm, CE fine-tuning and MBJ. ``readings`` are
inference-only settings evaluated on the trained checkpoint (tau of tau-norm, IEM's memory
reads); an arm reports the reading with the best mean validation top-1 over seeds.

An :class:`Arm` names a final stage, the method it belongs to and its kind (``baseline``,
``paper`` = the paper read literally, ``recommended`` = this package's validation-chosen
reading, ``variant``, ``control``). A ``control`` arm (``control_of`` = the arm it controls:
CE fine-tuning at the same lr, a cRT inside the method's pipeline, Table-7 noise) is shown
next to that arm but never reported as its method's reading. :data:`SCREENS` names the arm
lists of the round-2 screens (issues 18 and 19), each with its controls. New methods plug in
with :func:`register_arm`; the runner never needs editing. Overrides are mmengine dotted
keys; a value may be a callable of the
:class:`~lt_plugins.benchmark.datasets.DatasetSpec` (e.g. a memory of ``5 * C`` slots).
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Tuple

# Template names: '{s}' becomes '-cpu' (the 30-epoch CPU schedule) or '' (the papers').
BASE = 'configs/baselines/{m}_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
MBJ = 'configs/mbj/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
IEM = 'configs/iem/iem_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
STG = 'configs/stg/stg-stage{n}_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
AFA = 'configs/afa/afa_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
AFA_CRT = 'configs/afa/afa-crt_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'


@dataclass(eq=False)
class Stage:
    """One run of an arm's chain (see the module docstring).

    Args:
        name: recipe name, unique per parent chain (its work dir; shared by the arms that
            use the same chain).
        template: config template (``{s}`` = schedule suffix).
        overrides: cfg overrides (dotted keys; values may be ``fn(dataset_spec)``).
        parent: the stage whose last checkpoint this one loads.
        train: False for an evaluation-only stage (post-hoc methods).
        readings: inference-only overrides, each evaluated on val and test.
        cacheable: the stage trains on a frozen backbone through
            ``FeatureCacheClassifier`` (``--feature-cache`` adds a FeatureCacheHook).
    """
    name: str
    template: str
    overrides: Dict[str, object] = field(default_factory=dict)
    parent: Optional['Stage'] = None
    train: bool = True
    readings: Dict[str, Dict[str, object]] = field(default_factory=lambda: {'default': {}})
    cacheable: bool = False

    @property
    def key(self) -> str:
        """Chain of recipe names from stage 1, e.g. ``'ce/crt'``."""
        return self.name if self.parent is None else f'{self.parent.key}/{self.name}'

    def chain(self) -> List['Stage']:
        """Stages from stage 1 to this one."""
        return ([] if self.parent is None else self.parent.chain()) + [self]


@dataclass(eq=False)
class Arm:
    """A benchmark arm: a method's final stage and how it is reported.

    Args:
        name: ``--methods`` name.
        method: the method it belongs to (one reported row per method, chosen on val).
        stage: its final stage.
        kind: ``'baseline'``, ``'paper'``, ``'recommended'``, ``'variant'`` or
            ``'control'`` (never chosen as its method's reading).
        description: one line for the table.
        default: part of the default method list.
        probe: a diagnostic arm (e.g. every inference reading of a trained variant).
        readings: the stage readings this arm may report (None: all of them); a stage
            evaluates the union of what its selected arms need.
        control_of: for a ``'control'`` arm, the arm it controls (shown after it).
    """
    name: str
    method: str
    stage: Stage
    kind: str = 'variant'
    description: str = ''
    default: bool = False
    probe: bool = False
    readings: Optional[Tuple[str, ...]] = None
    control_of: Optional[str] = None

    def __post_init__(self):
        unknown = [r for r in (self.readings or ()) if r not in self.stage.readings]
        if unknown:
            raise ValueError(f'arm {self.name!r}: readings {unknown} are not readings of stage '
                             f'{self.stage.key!r} ({sorted(self.stage.readings)})')

    @property
    def reading_names(self) -> Tuple[str, ...]:
        return tuple(self.readings or self.stage.readings)


KINDS = ('baseline', 'paper', 'recommended', 'variant', 'control')
ARMS: Dict[str, Arm] = {}
_STAGES: Dict[str, Stage] = {}
# Named arm lists (the round-2 screens of issues 18 and 19, the IEM ablation table):
# ``--methods NAME`` runs the listed arms with their controls in one call (filled in below).
SCREENS: Dict[str, Tuple[str, ...]] = {}


def register_arm(arm: Arm) -> Arm:
    """Add ``arm`` to :data:`ARMS`; a stage key must always name the same recipe."""
    if arm.name in ARMS:
        raise ValueError(f'arm {arm.name!r} is already registered')
    if arm.kind not in KINDS:
        raise ValueError(f'arm {arm.name!r}: kind={arm.kind!r}; use one of {KINDS}')
    if (arm.kind == 'control') != (arm.control_of is not None):
        raise ValueError(f'arm {arm.name!r}: a control arm (kind=\'control\') names the arm it '
                         f'controls in control_of, and only a control does (kind={arm.kind!r}, '
                         f'control_of={arm.control_of!r})')
    for stage in arm.stage.chain():
        known = _STAGES.setdefault(stage.key, stage)
        if known is not stage and (known.template, known.overrides, known.train,
                                   known.readings) != (stage.template, stage.overrides,
                                                       stage.train, stage.readings):
            raise ValueError(f'arm {arm.name!r}: stage {stage.key!r} differs from the '
                             'registered stage of that name; give the new recipe its own name')
    ARMS[arm.name] = arm
    return arm


def select_arms(names: Optional[Iterable[str]] = None) -> List[Arm]:
    """Arms for ``--methods``: names, method names (all its default arms), screen names
    (:data:`SCREENS`), ``all``, or ``default`` (None)."""
    names = list(names or ['default'])
    out: List[Arm] = []
    for name in names:
        if name == 'default':
            picked = [a for a in ARMS.values() if a.default]
        elif name == 'all':
            picked = list(ARMS.values())
        elif name in ARMS:
            picked = [ARMS[name]]
        elif name in SCREENS:
            picked = [ARMS[a] for a in SCREENS[name]]
        else:
            picked = [a for a in ARMS.values()
                      if a.method.lower() == name.lower() and a.default]
            if not picked:
                raise ValueError(f'--methods {name!r}: no such arm or method; arms: '
                                 f'{sorted(ARMS)}; methods: '
                                 f'{sorted({a.method for a in ARMS.values()})}; screens: '
                                 f"{sorted(SCREENS)}; or 'default' / 'all'")
        out += [a for a in picked if a not in out]
    return out


def _num_classes_times(k: int) -> Callable:
    def fn(spec) -> int:
        return k * spec.num_classes
    fn.__name__ = f'x{k}C'
    return fn


# --------------------------------------------------------------------------- baselines
CE = Stage('ce', BASE.replace('{m}', 'ce'))
CRT = Stage('crt', BASE.replace('{m}', 'crt'), parent=CE)
LWS = Stage('lws', BASE.replace('{m}', 'lws'), parent=CE)
TAU_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)   # each reading rebuilds a runner: a coarse grid
TAUNORM = Stage('taunorm', BASE.replace('{m}', 'taunorm'), parent=CE, train=False,
                readings={f'tau{t:g}': {'model.head.tau': t} for t in TAU_GRID})
register_arm(Arm('ce', 'CE', CE, 'baseline', 'cross-entropy, instance-balanced', True))
register_arm(Arm('crt', 'cRT', CRT, 'baseline', 'CE, then classifier re-training', True))
register_arm(Arm('lws', 'LWS', LWS, 'baseline', 'CE, then learnable weight scaling', True))
register_arm(Arm('taunorm', 'tau-norm', TAUNORM, 'baseline',
                 'CE classifier tau-normalised, tau chosen on val', True))

# --------------------------------------------------------------------------- MBJ
# Readings of MBJ: cfg overrides on the MBJ template (10 epochs from the CE checkpoint).
_FROZEN = {'model.type': 'DecoupledClassifier', 'model.reinit_head': False}
MBJ_READINGS: Dict[str, Dict[str, object]] = {
    'paper': {},
    'beta1': {'model.head.memory.beta': 1.0},
    'beta1.5-eta1': {'model.head.eta': 1.0},
    'beta1-eta5': {'model.head.memory.beta': 1.0, 'model.head.eta': 5.0},
    'perclass5': {'model.head.memory.size': None, 'model.head.memory.per_class_slots': 5},
    'perclass20-beta1': {'model.head.memory.size': None,
                         'model.head.memory.per_class_slots': 20,
                         'model.head.memory.beta': 1.0},
    'beta1-20ep': {'model.head.memory.beta': 1.0, 'train_cfg.max_epochs': 20,
                   'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=True,
                                            begin=0, end=20)]},
    'size50C-beta1': {'model.head.memory.size': _num_classes_times(50),
                      'model.head.memory.beta': 1.0},
    'frozen-paper': dict(_FROZEN),
    'frozen-beta1': dict(_FROZEN, **{'model.head.memory.beta': 1.0}),
    'frozen-size50C-eta5': dict(_FROZEN, **{'model.head.memory.size': _num_classes_times(50),
                                            'model.head.eta': 5.0}),
    'frozen-size50C': dict(_FROZEN, **{'model.head.memory.size': _num_classes_times(50)}),
    'frozen-eta1': dict(_FROZEN, **{'model.head.eta': 1.0}),
    'size50C-eta5': {'model.head.memory.size': _num_classes_times(50), 'model.head.eta': 5.0},
    'size50C-paper': {'model.head.memory.size': _num_classes_times(50)},
    'cosine-beta1': {'model.head.classifier': 'cosine', 'model.head.memory.beta': 1.0},
    'beta1-capacity': {'model.head.memory.beta': 1.0,
                       'model.head.memory_reduction': 'capacity'},
    'paper-batchred': {'model.head.memory_reduction': 'batch'},
}
_MBJ_BASE = {'model.head.memory.size': _num_classes_times(5)}   # the paper's 5 * C slots
CE_FT = Stage('ce-ft', MBJ, {'model.head.memory_enabled': False,
                             'custom_hooks': [dict(type='ClassCountsHook')]}, parent=CE)
register_arm(Arm('ce-ft', 'MBJ', CE_FT, 'control',
                 'CE, then 10 epochs CE fine-tuning at lr 0.01 (MBJ control)', True,
                 control_of='mbj-paper'))
_CRT_AFTER = {
    'model.type': 'DecoupledClassifier', 'model.reinit_head': True,
    'model.head.memory_enabled': False,
    'train_dataloader.sampler': dict(type='ClassBalancedSampler', shuffle=True),
    'optim_wrapper.optimizer': dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4),
    'param_scheduler': [dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0, by_epoch=True,
                             begin=0, end=10, convert_to_iter_based=True)],
    'custom_hooks': [dict(type='ClassCountsHook')],
}
for _reading, _over in MBJ_READINGS.items():
    _stage = Stage(f'mbj-{_reading}', MBJ, dict(_MBJ_BASE, **_over), parent=CE)
    _kind = {'paper': 'paper', 'frozen-size50C-eta5': 'recommended'}.get(_reading, 'variant')
    register_arm(Arm('mbj' if _kind == 'recommended' else f'mbj-{_reading}', 'MBJ', _stage,
                     _kind, f'CE, then 10 epochs MBJ ({_reading})', _kind != 'variant'))
    if _reading in ('paper', 'beta1'):   # MBJ followed by cRT
        register_arm(Arm(f'mbj-{_reading}+crt', 'MBJ', Stage('crt', MBJ, dict(_CRT_AFTER),
                                                            parent=_stage),
                         'variant', f'MBJ ({_reading}), then cRT'))

# Issue 18 screens (trainable backbone, 10 epochs from CE; configs/mbj/*-cpu-lr1e-3*.py ...):
# (1) the memory-phase lr, each MBJ arm next to its CE fine-tuning control at the same lr;
# (2) the memory mix at lr 1e-3 and 1e-4; (3) MBJ at lr 1e-3 / 1e-4, then cRT.
_LR1E3 = {'optim_wrapper.optimizer.lr': 0.001}   # scaled with the batch like the templates
_LR1E4 = {'optim_wrapper.optimizer.lr': 0.0001}
_LR_SCREEN: Dict[str, Dict[str, object]] = {
    'lr1e-3': _LR1E3,
    'lr1e-4': _LR1E4,
    'bbmult0.1': {'optim_wrapper.paramwise_cfg': dict(custom_keys={
        'backbone': dict(lr_mult=0.1)})},
}
_MEMORY_MIX: Dict[str, Dict[str, object]] = {
    'beta1': {'model.head.memory.beta': 1.0},
    'perclass5': {'model.head.memory.size': None, 'model.head.memory.per_class_slots': 5},
    'capacity': {'model.head.memory_reduction': 'capacity'},
    'size50C-eta5': {'model.head.memory.size': _num_classes_times(50), 'model.head.eta': 5.0},
}
# every mix at lr 1e-3 and at lr 1e-4 (the only lr of the lr screen at which MBJ beat its
# control)
_MEMORY_SCREEN: Dict[str, Dict[str, object]] = {
    **{f'lr1e-3-{k}': dict(_LR1E3, **v) for k, v in _MEMORY_MIX.items()},
    **{f'lr1e-4-{k}': dict(_LR1E4, **v) for k, v in _MEMORY_MIX.items()},
}
_CE_FT_OVER = dict(CE_FT.overrides)
MBJ_SCREEN_STAGES: Dict[str, Stage] = {}
for _reading, _over in {**_LR_SCREEN, **_MEMORY_SCREEN}.items():
    _stage = MBJ_SCREEN_STAGES[_reading] = Stage(f'mbj-{_reading}', MBJ,
                                                 dict(_MBJ_BASE, **_over), parent=CE)
    register_arm(Arm(f'mbj-{_reading}', 'MBJ', _stage, 'variant',
                     f'CE, then 10 epochs MBJ ({_reading}, trainable backbone)'))
    if _reading in _LR_SCREEN:
        register_arm(Arm(f'ce-ft-{_reading}', 'MBJ', Stage(
            f'ce-ft-{_reading}', MBJ, dict(_CE_FT_OVER, **_over), parent=CE), 'control',
            f'CE, then 10 epochs CE fine-tuning ({_reading}; control)',
            control_of=f'mbj-{_reading}'))
for _reading in ('lr1e-3', 'lr1e-4'):
    register_arm(Arm(f'mbj-{_reading}+crt', 'MBJ', Stage('crt', MBJ, dict(_CRT_AFTER),
                                                        parent=MBJ_SCREEN_STAGES[_reading]),
                     'variant', f'MBJ ({_reading.replace("lr", "lr ")}), then cRT'))
SCREENS['mbj-screen-lr'] = ('ce-ft', 'mbj-paper', 'ce-ft-lr1e-3', 'mbj-lr1e-3',
                            'ce-ft-lr1e-4', 'mbj-lr1e-4', 'ce-ft-bbmult0.1', 'mbj-bbmult0.1')
SCREENS['mbj-screen-memory'] = ('ce-ft-lr1e-3', 'mbj-lr1e-3', 'mbj-lr1e-3-beta1',
                                'mbj-lr1e-3-perclass5', 'mbj-lr1e-3-capacity',
                                'mbj-lr1e-3-size50C-eta5', 'mbj-lr1e-3+crt', 'mbj-paper',
                                'mbj-paper+crt', 'crt')
SCREENS['mbj-screen-memory-lr1e-4'] = ('crt', 'ce-ft-lr1e-4', 'mbj-lr1e-4', 'mbj-lr1e-4+crt',
                                       'mbj-lr1e-4-beta1', 'mbj-lr1e-4-perclass5',
                                       'mbj-lr1e-4-capacity', 'mbj-lr1e-4-size50C-eta5')

# --------------------------------------------------------------------------- IEM
# Variants (training) and readings (inference only, evaluated on the trained checkpoint; a
# reading added later is evaluated without training again): the Table 5 ablations and the
# open choices of the paper.
_MEM_LR_1E3 = {'optim_wrapper.paramwise_cfg.custom_keys': {
    'head.global_memory': dict(adam=True, lr_mult=1e-2, decay_mult=0.0),
    'head.local_memory': dict(adam=True, lr_mult=1e-2, decay_mult=0.0)}}
IEM_VARIANTS: Dict[str, Dict[str, object]] = {
    'paper': {},
    'no-rsa': {'model.neck.attention': False},
    'no-local': {'model.head.use_local_memory': False},
    'no-global': {'model.head.use_global_memory': False},
    'memlr1e-3': dict(_MEM_LR_1E3),
    'frozen-writes': dict(_MEM_LR_1E3, **{'model.head.write_after_warmup': False,
                                          'model.head.warmup_iters': 500}),
    'e2e': {'model.head.memory_loss_to_backbone': True},
    'logit-values': {'model.head.warmup_value': 'logit'},
    'region-max': {'model.head.region_reduce': 'max'},
}


# Issue 18: the memory Adam lr held constant (HybridSGDAdam ``fixed_lr``), alone and with the
# other switches, 30 epochs from scratch (the full runs of the ft10 screen's winners).
def _fixed_memory_lr(lr: float) -> Dict[str, object]:
    return {'optim_wrapper.paramwise_cfg.custom_keys': {
        'head.global_memory': dict(adam=True, fixed_lr=lr, decay_mult=0.0),
        'head.local_memory': dict(adam=True, fixed_lr=lr, decay_mult=0.0)}}


_FIXED_1E3 = _fixed_memory_lr(1e-3)
_IEM_SWITCHES: Dict[str, Dict[str, object]] = {   # on top of a constant memory lr 1e-3
    'frozen-writes': {'model.head.write_after_warmup': False},
    'logit': {'model.head.warmup_value': 'logit'},
    'cbs': {'train_dataloader.sampler': dict(type='ClassBalancedSampler', shuffle=True)},
    'e2e': {'model.head.memory_loss_to_backbone': True},
    'merge': {'model.head.merge_radius': 0.05, 'model.head.merge_relative': True},
}
_LEARNABLE = dict(_IEM_SWITCHES['frozen-writes'], **_IEM_SWITCHES['logit'])
IEM_VARIANTS.update({
    'memlr1e-5-const': _fixed_memory_lr(1e-5),
    'memlr1e-3-const': dict(_FIXED_1E3),
    'learnable-values': dict(_FIXED_1E3, **_LEARNABLE),
    **{f'memlr1e-3-const-{k}': dict(_FIXED_1E3, **v) for k, v in _IEM_SWITCHES.items()},
})
_W = 'model.head.inference_weights'
IEM_READINGS: Dict[str, Dict[str, object]] = {
    'default': {},
    'classifier-only': {_W: dict(classifier=1.0, global_memory=0.0, local_memory=0.0)},
    'memory-only': {_W: dict(classifier=0.0, global_memory=0.5, local_memory=0.5)},
    'norm-scores': {'model.head.normalize_memory_scores': True},
    'read-all': {'model.head.inference_read': 'all'},
    'keys': {'model.head.inference_read': 'keys'},
    'keys+global-only': {'model.head.inference_read': 'keys',
                         _W: dict(classifier=0.0, global_memory=1.0, local_memory=0.0)},
    'drop-local': {_W: dict(classifier=0.5, global_memory=0.25, local_memory=0.0)},
    'drop-global': {_W: dict(classifier=0.5, global_memory=0.0, local_memory=0.25)},
    'classifier-heavy': {_W: dict(classifier=0.8, global_memory=0.1, local_memory=0.1)},
    'keys-memory-only': {'model.head.inference_read': 'keys',
                         _W: dict(classifier=0.0, global_memory=0.5, local_memory=0.5)},
    'global-only': {_W: dict(classifier=0.0, global_memory=1.0, local_memory=0.0)},
    'local-only': {_W: dict(classifier=0.0, global_memory=0.0, local_memory=1.0)},
}
IEM_STAGES: Dict[str, Stage] = {}
for _variant, _over in IEM_VARIANTS.items():
    # the probe arm: every inference reading of the trained variant, chosen on val
    # a reading that weighs only a memory the variant lacks has nothing to read
    _skip = {'no-global': ('keys+global-only', 'global-only'),
             'no-local': ('local-only', )}.get(_variant, ())
    _stage = IEM_STAGES[_variant] = Stage(
        f'iem-{_variant}', IEM, dict(_over),
        readings={k: v for k, v in IEM_READINGS.items() if k not in _skip})
    register_arm(Arm(f'iem-{_variant}@readings', 'IEM', _stage, 'variant',
                     f'IEM {_variant}, every inference reading (chosen on val)', probe=True))
register_arm(Arm('iem-paper', 'IEM', IEM_STAGES['paper'], 'paper',
                 'IEM + RSA as the paper reads (memory lr 1e-5, 0.5/0.25/0.25)', True,
                 readings=('default', )))
register_arm(Arm('iem', 'IEM', IEM_STAGES['no-rsa'], 'recommended',
                 'IEM w/o RSA, global memory as a soft kNN over its keys', True,
                 readings=('keys+global-only', )))
# Issue 18 screen: 10 epochs of IEM from the CE checkpoint at a constant lr 0.01 (the MBJ
# fine-tuning schedule, so CE fine-tuning is the control), memory Adam lr held at 1e-5 (the
# paper) or 1e-3 with the switches (configs/iem/iem_*-cpu-ft10*.py); every inference
# reading, chosen on val.
_FT10 = {'optim_wrapper.optimizer.lr': 0.01,
         'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0,
                                  end=10)],
         'train_cfg.max_epochs': 10}
IEM_FT10: Dict[str, Dict[str, object]] = {
    'ft10': dict(_FT10, **_fixed_memory_lr(1e-5)),
    'ft10-memlr1e-3': dict(_FT10, **_FIXED_1E3),
    'ft10-learnable-values': dict(_FT10, **_FIXED_1E3, **_LEARNABLE),
    **{f'ft10-memlr1e-3-{k}': dict(_FT10, **_FIXED_1E3, **v) for k, v in _IEM_SWITCHES.items()},
}
for _variant, _over in IEM_FT10.items():
    register_arm(Arm(f'iem-{_variant}', 'IEM', Stage(f'iem-{_variant}', IEM, dict(_over),
                                                     parent=CE, readings=dict(IEM_READINGS)),
                     'variant', f'CE, then 10 epochs IEM ({_variant}), reading chosen on val'))
register_arm(Arm('iem-ft10-ce-ft', 'IEM', CE_FT, 'control',
                 'CE, then 10 epochs CE fine-tuning at lr 0.01 (IEM ft10 control)',
                 control_of='iem-ft10'))
# the control of the class-balanced arm: the same 10 epochs of CE fine-tuning, class-balanced
# (does IEM add anything to class-balanced fine-tuning of the whole network?)
register_arm(Arm('iem-ft10-ce-ft-cbs', 'IEM', Stage('ce-ft-cbs', MBJ, dict(
    _CE_FT_OVER, **_IEM_SWITCHES['cbs']), parent=CE), 'control',
    'CE, then 10 epochs class-balanced CE fine-tuning at lr 0.01 (IEM ft10 cbs control)',
    control_of='iem-ft10-memlr1e-3-cbs'))
SCREENS['iem-ablations'] = ('ce', *(f'iem-{v}@readings' for v in (
    'paper', 'memlr1e-3', 'no-rsa', 'no-local', 'no-global')))
SCREENS['iem-screen-ft10'] = ('iem-ft10-ce-ft', 'iem-ft10-ce-ft-cbs',
                              *(f'iem-{v}' for v in IEM_FT10))
SCREENS['iem-screen-const'] = ('ce', 'iem-paper', *(
    f'iem-{v}@readings' for v in ('memlr1e-5-const', 'memlr1e-3-const', 'learnable-values',
                                  *(f'memlr1e-3-const-{k}' for k in _IEM_SWITCHES))))

# --------------------------------------------------------------------------- STG
STG1 = Stage('stg-stage1', STG.replace('{n}', '1'))
STG2 = Stage('stg-stage2', STG.replace('{n}', '2'), parent=STG1, cacheable=True)
STG_ARMS: Dict[str, Dict[str, object]] = {   # stage-3 readings (one run each)
    'crt': {'model.head.augment': 'none'},
    'lam1.5': {'model.head.augment': 'stg', 'model.head.lam': 1.5},
    'lam0.5': {'model.head.augment': 'stg', 'model.head.lam': 0.5},
    'lam1.0': {'model.head.augment': 'stg', 'model.head.lam': 1.0},
    'nomean': {'model.head.augment': 'stg', 'model.head.lam': 1.5,
               'model.head.use_mean': False},
    # Table 7 controls with the values of the -gaussian / -dropout configs
    'gaussian': {'model.head.augment': 'gaussian', 'model.head.noise_std': 1.0},
    'dropout0.3': {'model.head.augment': 'dropout', 'model.head.dropout_p': 0.3},
    # issue 19: the token of the head class the stage-1 classifier scores highest
    'tokencls': {'model.head.augment': 'stg', 'model.head.lam': 1.5,
                 'model.head.token_source': 'classifier'},
    'lam0.5-tokencls': {'model.head.augment': 'stg', 'model.head.lam': 0.5,
                        'model.head.token_source': 'classifier'},
}
# arm name and kind of a stage-3 reading (paper only on the main chain, recommended only on
# the chain registered with recommended=True; variants elsewhere)
_STG_NAMES = {'lam1.5': ('stg-paper', 'paper'), 'lam0.5': ('stg', 'recommended'),
              'crt': ('stg-crt', 'control'), 'gaussian': ('stg-gaussian', 'control'),
              'dropout0.3': ('stg-dropout', 'control')}


def _register_stg_chain(prefix: str, stage2: Stage, stage3: Dict[str, Dict[str, object]],
                        names: Iterable[str], default: Iterable[str] = (), tag: str = '',
                        method: str = 'STG', recommended: bool = False) -> None:
    """Stage-3 arms ``names`` of :data:`STG_ARMS` on ``stage2`` (``stage3``: overrides
    added to each, ``tag``: in their stage names); a chain's controls control its
    ``lam0.5`` arm (named ``prefix``), which is the method's recommended arm when
    ``recommended``; ``default``: the names that ``--methods STG`` selects; ``method``: the row
    they are reported under."""
    for name in names:
        arm, kind = _STG_NAMES.get(name, (f'stg-{name}', 'variant'))
        arm = arm.replace('stg', prefix, 1)
        if (kind == 'paper' and prefix != 'stg') or (kind == 'recommended' and not recommended):
            kind = 'variant'
        over = dict(STG_ARMS[name], **stage3)
        stage = Stage(f'stage3{tag}-{name}', STG.replace('{n}', '3'), over, parent=stage2,
                      cacheable=True)
        register_arm(Arm(arm, method, stage, kind,
                         f'STG stages 1-2 ({stage2.key}), then stage 3 ({name})',
                         name in default,
                         control_of=prefix if kind == 'control' else None))


# The paper's pipeline (mixup stage 1, threshold 100, Adam stage 3); its lambda 1.5 arm is the
# paper reading. The recommended reading is the chain stg-ce-median-sgd below (issue 19).
_register_stg_chain('stg', STG2, {}, STG_ARMS, default=('lam1.5', ))
# The paper's comparison point: the package's cRT (SGD) on the mixup stage 1.
register_arm(Arm('stg-stage1+crt', 'STG', Stage('crt', BASE.replace('{m}', 'crt'),
                                                parent=STG1), 'control',
                 'STG mixup stage 1, then the package cRT (SGD lr 0.1)', control_of='stg'))
# Issue 19 screens. (a) Stage 3 with the package's SGD cRT schedule (-cpu-sgd configs).
_SGD3 = {'optim_wrapper.optimizer': dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4,
                                         nesterov=False),
         'param_scheduler': [dict(type='CosineAnnealingLR', T_max=10, eta_min=0.0,
                                  by_epoch=True, begin=0, end=10, convert_to_iter_based=True)]}
_register_stg_chain('stg-sgd', STG2, _SGD3, ('lam1.5', 'lam0.5', 'crt'), tag='-sgd')
# (b) the head/tail split at the median count, in stages 2 and 3 (-cpu-median configs).
_MEDIAN = {'model.head.head_threshold': 'median', 'head_threshold': 'median'}
STG2_MEDIAN = Stage('stg-stage2-median', STG.replace('{n}', '2'), dict(_MEDIAN), parent=STG1,
                    cacheable=True)
_register_stg_chain('stg-median', STG2_MEDIAN, _MEDIAN, ('lam1.5', 'lam0.5', 'crt'))
# (c) the mixup stage 1 reached by 10 epochs of mixup fine-tuning from the CE checkpoint
# (-cpu-mixft10 configs: SGD lr 0.01 constant), then stages 2-3 on it.
STG1_MIXFT10 = Stage('stg-stage1-mixft10', STG.replace('{n}', '1'), {
    'optim_wrapper.optimizer': dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=2e-4),
    'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=10)],
    'train_cfg.max_epochs': 10}, parent=CE)
STG2_MIXFT10 = Stage('stg-stage2', STG.replace('{n}', '2'), parent=STG1_MIXFT10,
                     cacheable=True)
_register_stg_chain('stg-mixft10', STG2_MIXFT10, {}, ('lam1.5', 'lam0.5', 'crt'))
register_arm(Arm('stg-mixft10-stage1+crt', 'STG', Stage('crt', BASE.replace('{m}', 'crt'),
                                                        parent=STG1_MIXFT10), 'control',
                 'CE + 10 epochs mixup, then the package cRT (SGD lr 0.1)',
                 control_of='stg-mixft10'))
_register_stg_chain('stg-mixft10-sgd', STG2_MIXFT10, _SGD3, ('lam1.5', 'lam0.5', 'crt'),
                    tag='-sgd')
# (d) stages 2-3 on the plain CE checkpoint (the stage 1 of the round-1 STG table): on the
# 30-epoch CPU schedule the mixup stage 1 under-fits (CIFAR-10-LT seed 0: 47.67 vs CE 62.70;
# cRT on it val 70.1 vs 75.5 on CE), so validation picks CE as stage 1 and this chain is where
# stage-3 readings are compared with the package's cRT on the same checkpoint.
STG2_CE = Stage('stg-stage2', STG.replace('{n}', '2'), parent=CE, cacheable=True)
_register_stg_chain('stg-ce', STG2_CE, {}, ('lam1.5', 'lam0.5', 'crt', 'lam1.0', 'gaussian',
                                             'dropout0.3', 'tokencls', 'lam0.5-tokencls'))
_register_stg_chain('stg-ce-sgd', STG2_CE, _SGD3, ('lam1.5', 'lam0.5', 'crt', 'gaussian',
                                                    'dropout0.3'), tag='-sgd')
STG2_CE_MEDIAN = Stage('stg-stage2-median', STG.replace('{n}', '2'), dict(_MEDIAN), parent=CE,
                       cacheable=True)
_register_stg_chain('stg-ce-median', STG2_CE_MEDIAN, _MEDIAN, ('lam1.5', 'lam0.5', 'crt'))
# recommended (chosen on val among the SGD-stage-3 arms; SGD because Adam's cRT arm
# under-trains at 100 classes): CE stage 1, median split, lambda 0.5, the package cRT schedule
# Its Table 7 controls (Gaussian noise, dropout on the same stage 2 and stage-3 schedule): the
# one-seed gap to the Gaussian control was under a point, so they run over the same 3 seeds.
_register_stg_chain('stg-ce-median-sgd', STG2_CE_MEDIAN, dict(_MEDIAN, **_SGD3),
                    ('lam0.5', 'crt', 'gaussian', 'dropout0.3'), tag='-sgd',
                    default=('lam0.5', 'crt'), recommended=True)
SCREENS['stg-screen-ce'] = ('crt', 'stg-ce-crt', 'stg-ce-paper', 'stg-ce', 'stg-ce-lam1.0',
                            'stg-ce-gaussian', 'stg-ce-dropout', 'stg-ce-tokencls',
                            'stg-ce-lam0.5-tokencls', 'stg-ce-sgd-crt', 'stg-ce-sgd-paper',
                            'stg-ce-sgd', 'stg-ce-sgd-gaussian', 'stg-ce-sgd-dropout',
                            'stg-ce-median-crt', 'stg-ce-median-paper',
                            'stg-ce-median', 'stg-ce-median-sgd-crt', 'stg-ce-median-sgd')
SCREENS['stg-screen-controls'] = ('stg-crt', 'stg-stage1+crt', 'stg-paper', 'stg',
                                  'stg-gaussian', 'stg-dropout', 'stg-tokencls',
                                  'stg-lam0.5-tokencls')
SCREENS['stg-screen-sgd'] = ('crt', 'stg-stage1+crt', 'stg-crt', 'stg', 'stg-sgd-crt',
                             'stg-sgd-paper', 'stg-sgd')
SCREENS['stg-screen-median'] = ('stg-crt', 'stg-paper', 'stg', 'stg-median-crt',
                                'stg-median-paper', 'stg-median')
SCREENS['stg-screen-mixft10'] = ('crt', 'stg-mixft10-stage1+crt', 'stg-mixft10-crt',
                                 'stg-mixft10-paper', 'stg-mixft10', 'stg-mixft10-sgd-crt',
                                 'stg-mixft10-sgd-paper', 'stg-mixft10-sgd')

# --------------------------------------------------------------------------- AFA
AFA_VARIANTS: Dict[str, Dict[str, object]] = {
    'paper': {},
    'nogen': {'model.neck.generate': False, 'model.head.all_loss_weight': 0.0,
              'custom_hooks': [dict(type='ClassCountsHook')]},
    'nolbls': {'custom_hooks': [dict(type='ClassCountsHook')]},
    'noattadd': {'model.neck.attention_addition': False},
}


def _neck_at_inference(overrides: Dict[str, object]) -> Dict[str, object]:
    """The neck overrides of an AFA stage 1 that its cRT stage must repeat: the frozen neck
    runs in eval mode there, so every neck switch but ``generate`` changes its features
    (e.g. ``attention_addition=False``: X_enh = X)."""
    return {k: v for k, v in overrides.items()
            if k.startswith('model.neck.') and k != 'model.neck.generate'}


for _variant, _over in AFA_VARIANTS.items():
    _s1 = Stage('afa' if _variant == 'paper' else f'afa-{_variant}', AFA, dict(_over))
    _s2 = Stage('crt', AFA_CRT, _neck_at_inference(_over), parent=_s1)
    paper = _variant == 'paper'
    control = _variant == 'nogen'    # no generated features: the control of AFA itself
    register_arm(Arm('afa-paper' if paper else f'afa-{_variant}', 'AFA', _s1,
                     'paper' if paper else ('control' if control else 'variant'),
                     f'AFA + LBLS ({_variant})', paper,
                     control_of='afa-paper' if control else None))
    register_arm(Arm('afa' if paper else f'afa-{_variant}+crt', 'AFA', _s2,
                     'recommended' if paper else ('control' if control else 'variant'),
                     f'AFA + LBLS ({_variant}), then cRT', paper,
                     control_of='afa' if control else None))

# Issue 19 screen (configs/afa/afa*_cpu-screen15*.py): 15 epochs with t = 5 (warm-up 3
# epochs, cosine to 15), each reading of the mask / decomposition / BatchNorm, then cRT with
# the same neck; no generation and CE in the same pipeline (neck off) are the controls.
_S15 = {'param_scheduler': [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=3,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=12, eta_min=0.0, by_epoch=True, begin=3, end=15,
         convert_to_iter_based=True)],
    'train_cfg.max_epochs': 15,
    'custom_hooks': [dict(type='ClassCountsHook'),
                     dict(type='LBLSHook', start=5, weight=2.0, by_epoch=True)]}
_NO_LBLS = {'model.head.all_loss_weight': 0.0, 'custom_hooks': [dict(type='ClassCountsHook')]}
AFA_SCREEN: Dict[str, Dict[str, object]] = {
    '': {},
    '-spatial': {'model.neck.mask_axis': 'spatial'},
    '-sigmoid': {'model.neck.mask': 'sigmoid'},
    '-softmaxn': {'model.neck.mask': 'softmax_times_n'},
    '-varinput': {'model.neck.var_source': 'input'},
    '-bnfrozen': {'model.neck.gen_bn': 'frozen_stats'},
    '-conv1x1': {'model.neck.qkv': 'conv1x1'},
    '-nogen': dict(_NO_LBLS, **{'model.neck.generate': False}),
    '-ce': dict(_NO_LBLS, **{'model.neck.generate': False,
                             'model.neck.attention_addition': False}),
}
for _variant, _over in AFA_SCREEN.items():
    _control = _variant in ('-nogen', '-ce')
    _s1 = Stage(f'afa-s15{_variant}', AFA, dict(_S15, **_over))
    _s2 = Stage('crt', AFA_CRT, _neck_at_inference(_over), parent=_s1)
    register_arm(Arm(f'afa-s15{_variant}', 'AFA', _s1, 'control' if _control else 'variant',
                     f'AFA + LBLS, 15-epoch screen ({_variant[1:] or "paper"})',
                     control_of='afa-s15' if _control else None))
    register_arm(Arm(f'afa-s15{_variant}+crt', 'AFA', _s2,
                     'control' if _control else 'variant',
                     f'AFA + LBLS, 15-epoch screen ({_variant[1:] or "paper"}), then cRT',
                     control_of='afa-s15+crt' if _control else None))
SCREENS['afa-screen15'] = ('ce', 'crt', *(f'afa-s15{v}{c}' for v in AFA_SCREEN
                                          for c in ('', '+crt')))

# --------------------------------------------------------------------------- LDAM-DRW, RIDE
# Issue-16 baselines and MBJ + RIDE (configs/baselines/ldam-drw_*, configs/ride/): RIDE trains
# 4 experts with LDAM-DRW + the diversity loss; MBJ + RIDE fine-tunes that model with one MBJ
# memory per expert (the paper's 5 * C slots, beta 1.5, eta 15), as MBJ does on CE.
LDAM = 'configs/baselines/ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
RIDE = 'configs/ride/ride_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
MBJ_RIDE = 'configs/ride/mbj-ride_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
LDAM_STAGE = Stage('ldam-drw', LDAM)
register_arm(Arm('ldam-drw', 'LDAM-DRW', LDAM_STAGE, 'baseline',
                 'LDAM loss, deferred re-weighting (Cao et al. 2019)', False))
RIDE_STAGE = Stage('ride', RIDE)
register_arm(Arm('ride', 'RIDE', RIDE_STAGE, 'baseline',
                 'RIDE, 4 experts (0.75 width), LDAM-DRW + diversity loss', False))
register_arm(Arm('mbj-ride', 'MBJ+RIDE', Stage(
    'mbj-ride', MBJ_RIDE, {'model.head.mbj.memory.size': _num_classes_times(5)},
    parent=RIDE_STAGE), 'paper', 'RIDE, then MBJ fine-tuning, one memory per expert', False))
# MBJ's readings that do not collapse on CE (issue 18), carried over to RIDE, and the RIDE
# fine-tuning control (same 10 epochs, no memory): the paper reading's collapse on RIDE
# (many-shot 27%) is the one MBJ shows on CE with the same memory mix and lr.
MBJ_RIDE_READINGS: Dict[str, Dict[str, object]] = {
    'lr1e-3': dict(_LR1E3),
    'lr1e-4': dict(_LR1E4),
    'frozen-size50C-eta5': {'model.type': 'DecoupledClassifier', 'model.reinit_head': False,
                            'model.head.mbj.memory.size': _num_classes_times(50),
                            'model.head.mbj.eta': 5.0},
}
for _reading, _over in MBJ_RIDE_READINGS.items():
    register_arm(Arm(f'mbj-ride-{_reading}', 'MBJ+RIDE', Stage(
        f'mbj-ride-{_reading}', MBJ_RIDE,
        {'model.head.mbj.memory.size': _num_classes_times(5), **_over}, parent=RIDE_STAGE),
        'variant', f'RIDE, then MBJ fine-tuning ({_reading}), one memory per expert'))
_RIDE_FT = {'model.head.mbj': None,
            'custom_hooks': [dict(type='ClassCountsHook'), dict(type='DRWHook', start_epoch=0)]}
register_arm(Arm('ride-ft', 'MBJ+RIDE', Stage('ride-ft', MBJ_RIDE, dict(_RIDE_FT),
                                              parent=RIDE_STAGE), 'control',
                 'RIDE, then 10 epochs fine-tuning at lr 0.01 without memory (MBJ+RIDE control)',
                 control_of='mbj-ride'))
register_arm(Arm('ride-ft-lr1e-4', 'MBJ+RIDE', Stage('ride-ft-lr1e-4', MBJ_RIDE,
                                                     dict(_RIDE_FT, **_LR1E4),
                                                     parent=RIDE_STAGE), 'control',
                 'RIDE, then 10 epochs fine-tuning at lr 1e-4 without memory (control)',
                 control_of='mbj-ride-lr1e-4'))
SCREENS['mbj-ride-screen'] = ('ride', 'ride-ft', 'ride-ft-lr1e-4', 'mbj-ride',
                              *(f'mbj-ride-{r}' for r in MBJ_RIDE_READINGS))

# --------------------------------------------------------------------------- compositions
# Issue 14: the methods' parts on a stage 1 other than CE. LDAM-DRW is the strongest single
# stage 1 measured (CIFAR-10-LT seed 0: 73.65 vs cRT 72.20), so each classifier-side part is
# put on its frozen backbone: cRT, cRT + IEM memory read (ComposedClsHead with an
# EpisodicMemoryReader; the read and its weights chosen on val), MBJ's memory term on a
# re-initialised classifier (frozen backbone, 50 * C slots, eta 5), STG stages 2-3. Each is
# reported under 'Composed' (the recipe chosen on val); cRT on CE and LDAM-DRW alone are the
# single methods to beat.
COMPOSE_CRT_IEM = 'configs/compose/crt-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
_READER = 'model.head.memory_reader.'
_READS: Dict[str, Dict[str, object]] = {
    'default': {},                                            # Eq. 1, weights 0.5 / 0.5
    'keys': {_READER + 'inference_read': 'keys'},             # soft kNN over the stored keys
    'keys-0.8': {_READER + 'inference_read': 'keys',
                 _READER + 'inference_weights': dict(classifier=0.8, memory=0.2)},
    'classifier-only': {_READER + 'inference_weights': dict(classifier=1.0, memory=0.0)},
}
register_arm(Arm('ldam-drw+crt', 'Composed', Stage('crt', BASE.replace('{m}', 'crt'),
                                                   parent=LDAM_STAGE), 'variant',
                 'LDAM-DRW, then cRT (fresh linear classifier, class-balanced)'))
register_arm(Arm('ldam-drw+crt+iem', 'Composed', Stage(
    'crt-iem-read', COMPOSE_CRT_IEM, parent=LDAM_STAGE, readings=dict(_READS)), 'variant',
    'LDAM-DRW, then cRT with an IEM memory read (read and weights chosen on val)'))
# The LDAM-DRW classifier kept (a re-trained linear one loses LDAM's gain: ldam-drw+crt is
# below ldam-drw) and only IEM's memory read added (2 epochs of writes at lr 0); the reading
# 'classifier-only' reproduces ldam-drw exactly.
COMPOSE_LDAM_IEM = ('configs/compose/ldam-drw-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100'
                    '{s}.py')
register_arm(Arm('ldam-drw+iem', 'Composed', Stage('iem-read-keep', COMPOSE_LDAM_IEM,
                                                   parent=LDAM_STAGE, readings=dict(_READS)),
                 'variant', 'LDAM-DRW, classifier kept, plus an IEM memory read (read and '
                 'weights chosen on val)'))
# The same on RIDE, the strongest single method measured (76.97): its 4 experts and their
# classifiers kept, IEM's read over the concatenated expert features added (RIDEHead's
# memory_reader). With the MBJ + RIDE readings this is screen compose-ride.
COMPOSE_RIDE_IEM = 'configs/compose/ride-iem-read_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
register_arm(Arm('ride+iem', 'Composed', Stage('iem-read-keep', COMPOSE_RIDE_IEM,
                                               parent=RIDE_STAGE, readings=dict(_READS)),
                 'variant', 'RIDE, experts and classifiers kept, plus an IEM memory read (read '
                 'and weights chosen on val)'))
# RIDE's classifiers fine-tuned on its frozen experts with STG Table 7's Gaussian noise on the
# tail-class features (std 1.0, median split): the noise that equals STG over a cRT classifier
# on CIFAR-10-LT, on the strongest single method. Its control: the same stage without noise.
COMPOSE_RIDE_NOISE = 'configs/compose/ride-gaussian_resnet32-cifar_1xb128_cifar10-lt-ir100{s}.py'
register_arm(Arm('ride+gaussian', 'Composed', Stage('ride-gaussian', COMPOSE_RIDE_NOISE,
                                                    parent=RIDE_STAGE),
                 'variant', 'RIDE, experts frozen, classifiers fine-tuned 10 epochs with '
                 'Gaussian noise on tail features'))
register_arm(Arm('ride-ft-frozen', 'Composed', Stage(
    'ride-ft-frozen', COMPOSE_RIDE_NOISE, {'model.head.generator': None}, parent=RIDE_STAGE),
    'control', 'RIDE, experts frozen, classifiers fine-tuned 10 epochs without noise',
    control_of='ride+gaussian'))
SCREENS['compose-ride'] = ('crt', 'ride', 'ride+iem', 'ride+gaussian', 'ride-ft-frozen',
                           'ride-ft', 'ride-ft-lr1e-4', 'mbj-ride',
                           *(f'mbj-ride-{r}' for r in MBJ_RIDE_READINGS))
register_arm(Arm('ldam-drw+mbj', 'Composed', Stage(
    'mbj-frozen-reinit-size50C-eta5', MBJ, dict(_MBJ_BASE, **{
        'model.type': 'DecoupledClassifier', 'model.reinit_head': True,
        'model.head.memory.size': _num_classes_times(50), 'model.head.eta': 5.0}),
    parent=LDAM_STAGE), 'variant',
    'LDAM-DRW, then MBJ on the frozen backbone (fresh classifier, 50 * C slots, eta 5)'))
LDAM_STG2 = Stage('stg-stage2', STG.replace('{n}', '2'), parent=LDAM_STAGE, cacheable=True)
_register_stg_chain('ldam-drw+stg', LDAM_STG2, {}, ('lam1.5', 'lam0.5', 'crt'),
                    method='Composed')
_register_stg_chain('ldam-drw+stg-sgd', LDAM_STG2, _SGD3, ('lam0.5', 'crt'), tag='-sgd',
                    method='Composed')
SCREENS['compose-ldam'] = ('crt', 'ldam-drw', 'ldam-drw+crt', 'ldam-drw+crt+iem', 'ldam-drw+iem',
                           'ldam-drw+mbj', 'ldam-drw+stg-crt', 'ldam-drw+stg',
                           'ldam-drw+stg-paper', 'ldam-drw+stg-sgd-crt', 'ldam-drw+stg-sgd')

# --------------------------------------------------------------------------- issue 35
# The baselines a practitioner reaches for first (configs/baselines/): Balanced Softmax and
# the logit-adjusted loss (the CE recipe with another loss), post-hoc logit adjustment of the
# CE model (no training: tau chosen on val from a grid, as tau-norm's), weight balancing (CE
# with weight decay 5e-3, then the classifier fine-tuned with the class-balanced loss, weight
# decay and MaxNorm) and its stage 1 alone.
BS_STAGE = Stage('balanced-softmax', BASE.replace('{m}', 'balanced-softmax'))
register_arm(Arm('balanced-softmax', 'Balanced Softmax', BS_STAGE, 'baseline',
                 'CE on logits + log n_c (Ren et al. 2020)'))
register_arm(Arm('logit-adjust', 'Logit adjustment', Stage(
    'logit-adjust', BASE.replace('{m}', 'logit-adjust')), 'baseline',
    'CE on logits + tau log pi_c, tau 1 (Menon et al. 2021)'))
LA_TAU_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)   # tau 0 reads the CE model as it is
register_arm(Arm('logit-adjust-posthoc', 'Post-hoc LA', Stage(
    'logit-adjust-posthoc', BASE.replace('{m}', 'logit-adjust-posthoc'), parent=CE,
    train=False, readings={f'tau{t:g}': {'model.head.logit_adjustment.tau': t}
                           for t in LA_TAU_GRID}), 'baseline',
    'CE logits - tau log pi_c at inference, tau chosen on val'))
WB1 = Stage('weight-balancing-stage1', BASE.replace('{m}', 'weight-balancing-stage1'))
register_arm(Arm('weight-balancing-stage1', 'Weight balancing', WB1, 'variant',
                 'CE with weight decay 5e-3, lr 0.02 (weight balancing, stage 1 alone)'))
register_arm(Arm('weight-balancing', 'Weight balancing', Stage(
    'weight-balancing', BASE.replace('{m}', 'weight-balancing'), parent=WB1), 'baseline',
    'WD-tuned CE, then classifier fine-tuned: class-balanced loss, WD 0.1, MaxNorm '
    '(Alshammari et al. 2022)'))
SCREENS['lt-baselines'] = ('ce', 'crt', 'balanced-softmax', 'logit-adjust',
                           'logit-adjust-posthoc', 'weight-balancing-stage1', 'weight-balancing')

# The four methods' parts on a Balanced Softmax model, each with the same recipe without the
# part as its control (issue 35; as compose-ldam on LDAM-DRW):
# * MBJ's memory term: MBJ's validation-chosen reading on CE (frozen backbone, classifier
#   kept, 50 * C slots, eta 5), the batch loss staying Balanced Softmax; control: the same 10
#   epochs without memory.
# * IEM's memory read: the model kept whole, lr 0, 2 epochs of memory writes; the reads chosen
#   on val; control: the 'classifier-only' reading of the same run (= Balanced Softmax).
# * STG's stage 3 (stages 2-3 of STG's recommended chain: median split, lambda 0.5, SGD) with
#   the stage-3 loss itself Balanced Softmax on instance-balanced batches (no class-balanced
#   sampling on top of a balanced loss); control: the same stage 3 without augmentation.
_BS_LOSS = {'model.head.loss': dict(type='BalancedSoftmaxLoss')}
_BS_MBJ = dict(_MBJ_BASE, **_FROZEN, **_BS_LOSS, **{
    'model.head.memory.size': _num_classes_times(50), 'model.head.eta': 5.0})
register_arm(Arm('balanced-softmax+mbj', 'Composed', Stage(
    'mbj-frozen-size50C-eta5-bs', MBJ, dict(_BS_MBJ), parent=BS_STAGE), 'variant',
    'Balanced Softmax, then MBJ on the frozen backbone (classifier kept, 50 * C slots, eta 5, '
    'batch loss Balanced Softmax)'))
register_arm(Arm('balanced-softmax-ft-frozen', 'Composed', Stage(
    'ft-frozen-bs', MBJ, dict(_BS_MBJ, **{'model.head.memory_enabled': False,
                                          'custom_hooks': [dict(type='ClassCountsHook')]}),
    parent=BS_STAGE), 'control',
    'Balanced Softmax, then the same 10 epochs on the frozen backbone without memory',
    control_of='balanced-softmax+mbj'))
COMPOSE_BS_IEM = ('configs/compose/balanced-softmax-iem-read_resnet32-cifar_1xb128_cifar10-lt-'
                  'ir100{s}.py')
BS_IEM = Stage('iem-read-keep', COMPOSE_BS_IEM, parent=BS_STAGE, readings=dict(_READS))
register_arm(Arm('balanced-softmax+iem', 'Composed', BS_IEM, 'variant',
                 'Balanced Softmax, classifier kept, plus an IEM memory read (read and weights '
                 'chosen on val)', readings=('default', 'keys', 'keys-0.8')))
register_arm(Arm('balanced-softmax+iem-classifier-only', 'Composed', BS_IEM, 'control',
                 'the same run read by its classifier alone (= Balanced Softmax)',
                 readings=('classifier-only', ), control_of='balanced-softmax+iem'))
BS_STG2 = Stage('stg-stage2-median', STG.replace('{n}', '2'), dict(_MEDIAN), parent=BS_STAGE,
                cacheable=True)
_register_stg_chain('balanced-softmax+stg', BS_STG2, dict(
    _MEDIAN, **_SGD3, **_BS_LOSS,
    **{'train_dataloader.sampler': dict(type='DefaultSampler', shuffle=True)}),
    ('lam0.5', 'crt'), tag='-sgd-bs', method='Composed')
SCREENS['compose-balanced-softmax'] = (
    'crt', 'balanced-softmax', 'balanced-softmax+mbj', 'balanced-softmax-ft-frozen',
    'balanced-softmax+iem', 'balanced-softmax+iem-classifier-only', 'balanced-softmax+stg',
    'balanced-softmax+stg-crt')
