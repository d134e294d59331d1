"""MBJ's memory loss term as a part that attaches to any classifier (MBJ Eq. 1-2)."""
import copy
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from lt_plugins.memory.rebalanced_fifo import counter_generator

VARIANTS = ('F', 'W', 'WF', 'FR', 'FR+RJ')
MEMORY_REDUCTIONS = ('mean', 'capacity', 'batch')
SHARINGS = ('per_view', 'shared')
_NEG = -1e9

Classify = Callable[[torch.Tensor], torch.Tensor]
#: ``loss_fn(logits, labels, denom)``: the reduced memory loss (``sum / denom`` for CE).
LossFn = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
#: ``prototype_scores(x, protos, proto_labels)``: ``(B, M)`` scores of features on prototypes.
PrototypeScores = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def multi_prototype_logits(sim: torch.Tensor, proto_labels: torch.Tensor,
                           num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pool ``(B, M)`` prototype scores into ``(B, C)`` class scores by log-sum-exp.

    Class ``c``'s score is ``log sum_{m: label_m = c} exp(sim_m)`` (a softmax over all memorised
    prototypes, grouped by class). Returns the scores (``-1e9`` for classes absent from the
    memory) and the ``(C,)`` presence mask. Vectorised with ``scatter_reduce``.
    """
    B = sim.shape[0]
    idx = proto_labels.view(1, -1).expand(B, -1)
    cmax = sim.new_full((B, num_classes), _NEG).scatter_reduce(
        1, idx, sim, reduce='amax', include_self=True).detach()
    weights = torch.exp(sim - cmax.gather(1, idx))
    summed = sim.new_zeros((B, num_classes)).scatter_add(1, idx, weights)
    present = torch.bincount(proto_labels, minlength=num_classes) > 0
    logits = torch.where(present.view(1, -1), torch.log(summed.clamp_min(1e-30)) + cmax,
                         sim.new_full((), _NEG))
    return logits, present


@MODELS.register_module()
class MBJMemoryTerm(nn.Module):
    """MBJ's memory loss term: a class-rebalanced memory and ``eta * L_memory`` on a classifier.

    The part of Memory-based Jitter (Liu et al. 2021) that attaches to any classifier: it owns
    the :class:`~lt_plugins.memory.RebalancedFIFOMemory` bank(s) and, called with the batch
    features, labels and the classifier as a callable, first offers the detached features to
    the memory (admission by MBJ Eq. 1), then returns ``eta * L_memory`` (the second term of
    MBJ Eq. 2), ``L_memory`` being the classifier's loss on the memorised features and their
    labels (Algorithm 1: enqueue, then the loss). Stored features are detached, so the term only
    reaches the classifier. An empty memory contributes 0. The batch loss ``L_batch`` stays with
    the head.

    Variants (``variant``), as in ``MBJClsHead``:

    * ``'F'`` (MBJ-F): feature memory.
    * ``'W'`` (MBJ-W): a memory of detached classifier weight rows (all ``C`` rows offered each
      step, Algorithm 2); ``L_memory`` is CE of the batch features against the memorised
      prototypes pooled per class by log-sum-exp (:func:`multi_prototype_logits`); samples
      whose class has no prototype in memory contribute 0. Needs ``weight`` and
      ``prototype_scores`` in the call.
    * ``'WF'``: both memories, ``eta`` on their sum.
    * ``'FR'``: the memory is emptied before each (local, not gathered) write: only the current
      batch's admitted features (MBJ Sec. 4.5.2).
    * ``'FR+RJ'``: FR plus Gaussian jitter ``rj_std * ||f|| / sqrt(d) * N(0, I)`` on the
      memorised features (randomness keyed by the bank's seed and step).

    Several feature views (``num_views = K``, e.g. RIDE's experts): the call receives ``K``
    feature tensors and ``K`` classifiers; ``sharing='per_view'`` keeps one bank per view (seed
    ``seed + k``), ``'shared'`` one bank of the concatenated ``(N, K * dim)`` features whose
    entries are split back per view. ``L_memory`` is the sum over views. The weight variants
    need a single view.

    ``memory_reduction`` divides the summed memory loss by the number of valid entries
    (``'mean'``, the paper's CE), the bank size (``'capacity'``) or the batch size
    (``'batch'``). ``memory_enabled`` switches the term (and its writes) off;
    :meth:`set_memory_enabled` is the interface of ``MBJMemorySwitchHook``.

    Banks live in ``memories`` (a ``ModuleList`` of the feature banks, ``None`` for ``'W'``)
    and ``weight_memory`` (``None`` unless ``'W'``/``'WF'``).

    Args:
        dim (int): feature dimension ``d`` of one view.
        num_classes (int): number of classes ``C``.
        memory (dict): bank config; ``dim``/``num_classes`` are filled in, ``size`` defaults to
            ``5 * C`` (``None`` with ``per_class_slots``), ``seed`` (default 0) is the base seed
            (weight bank: ``seed + 1``). Defaults to
            ``dict(type='RebalancedFIFOMemory', beta=1.5)``.
        eta (float): weight of ``L_memory`` (MBJ Eq. 2; paper: 15). Defaults to 15.
        variant (str): ``'F'``, ``'W'``, ``'WF'``, ``'FR'`` or ``'FR+RJ'``. Defaults to ``'F'``.
        memory_reduction (str): ``'mean'``, ``'capacity'`` or ``'batch'``. Defaults to
            ``'mean'``.
        rj_std (float): relative std of the FR+RJ jitter. Defaults to 0.1.
        memory_enabled (bool): initial state of the term. Defaults to True.
        num_views (int): number of feature views ``K``. Defaults to 1.
        sharing (str): ``'per_view'`` or ``'shared'`` banks for ``K > 1``. Defaults to
            ``'per_view'``.
        owner (str): name used in error messages (the head that builds the term).
            Defaults to ``'MBJMemoryTerm'``.
    """

    def __init__(self,
                 dim: int,
                 num_classes: int,
                 memory: Optional[dict] = dict(type='RebalancedFIFOMemory', beta=1.5),
                 eta: float = 15.0,
                 variant: str = 'F',
                 memory_reduction: str = 'mean',
                 rj_std: float = 0.1,
                 memory_enabled: bool = True,
                 num_views: int = 1,
                 sharing: str = 'per_view',
                 owner: str = 'MBJMemoryTerm') -> None:
        super().__init__()
        self.owner = str(owner)
        if num_classes is None or int(num_classes) < 1:
            raise ValueError(f'{owner}: num_classes must be >= 1, got {num_classes}.')
        if dim is None or int(dim) < 1:
            raise ValueError(f'{owner}: the memory feature dim must be >= 1, got {dim}: set '
                             '`in_channels` of the head.')
        if variant not in VARIANTS:
            raise ValueError(f'{owner}: variant={variant!r}, choose one of {VARIANTS}.')
        if memory_reduction not in MEMORY_REDUCTIONS:
            raise ValueError(f'{owner}: memory_reduction={memory_reduction!r}, choose one '
                             f'of {MEMORY_REDUCTIONS}.')
        if sharing not in SHARINGS:
            raise ValueError(f'{owner}: sharing={sharing!r}, choose one of {SHARINGS}.')
        if int(num_views) < 1:
            raise ValueError(f'{owner}: num_views must be >= 1, got {num_views}.')
        if int(num_views) > 1 and variant in ('W', 'WF'):
            raise ValueError(f'{owner}: variant={variant!r} (classifier-weight memory) needs a '
                             f'single feature view, got num_views={num_views}; use \'F\'.')
        self.dim = int(dim)
        self.num_classes = int(num_classes)
        self.eta = float(eta)
        self.variant = variant
        self.memory_reduction = memory_reduction
        self.rj_std = float(rj_std)
        self.enabled = bool(memory_enabled)
        self.num_views = int(num_views)
        self.sharing = sharing

        cfg = copy.deepcopy(memory) if memory is not None else dict()
        cfg.setdefault('type', 'RebalancedFIFOMemory')
        cfg.setdefault('num_classes', self.num_classes)
        if cfg['num_classes'] != self.num_classes:
            raise ValueError(f'{owner}: memory.num_classes={cfg["num_classes"]} differs from '
                             f'num_classes={self.num_classes}; drop it from the memory config.')
        if cfg.get('per_class_slots') is None:
            cfg.setdefault('size', 5 * self.num_classes)
        else:
            cfg.setdefault('size', None)
        seed = int(cfg.pop('seed', 0))
        shared = self.num_views > 1 and sharing == 'shared'
        bank_dim = self.dim * self.num_views if shared else self.dim
        if cfg.setdefault('dim', bank_dim) != bank_dim:
            raise ValueError(f'{owner}: memory.dim={cfg["dim"]} differs from the feature '
                             f'dimension {bank_dim}; drop it from the memory config.')
        if variant == 'W':
            self.memories = None
        else:
            n_banks = 1 if shared else self.num_views
            self.memories = nn.ModuleList(
                MODELS.build(dict(cfg, seed=seed + k)) for k in range(n_banks))
        self.weight_memory = (MODELS.build(dict(cfg, dim=self.dim, seed=seed + 1))
                              if variant in ('W', 'WF') else None)

    # -- switch -------------------------------------------------------------------------------
    def set_memory_enabled(self, enabled: bool) -> None:
        """Switch the memory term (and memory writes) on or off (``MBJMemorySwitchHook``)."""
        self.enabled = bool(enabled)

    # -- loss ---------------------------------------------------------------------------------
    def forward(self,
                feats: Union[torch.Tensor, Sequence[torch.Tensor]],
                target: torch.Tensor,
                classify: Union[Classify, Sequence[Classify]],
                loss_fn: Optional[LossFn] = None,
                weight: Optional[torch.Tensor] = None,
                prototype_scores: Optional[PrototypeScores] = None) -> torch.Tensor:
        """``eta * L_memory`` after writing the batch (MBJ Eq. 2, second term).

        Args:
            feats (Tensor | Sequence[Tensor]): ``(N, d)`` features (the classifier's input),
                or one such tensor per view.
            target (Tensor): ``(N,)`` class labels.
            classify (callable | Sequence[callable]): features ``(M, d)`` -> logits ``(M, C)``
                (one per view).
            loss_fn (callable, optional): ``loss_fn(logits, labels, denom)`` -> reduced loss;
                default ``CE(logits.float(), labels, reduction='sum') / denom``.
            weight (Tensor, optional): ``(C, d)`` classifier weight rows (``'W'``/``'WF'``).
            prototype_scores (callable, optional): ``(x, protos, proto_labels)`` -> ``(N, M)``
                scores of the batch on memorised prototypes (``'W'``/``'WF'``).

        Returns:
            Tensor: the scalar ``eta * L_memory`` (0 when the memory is empty).
        """
        xs = [feats] if isinstance(feats, torch.Tensor) else list(feats)
        fns = list(classify) if isinstance(classify, (list, tuple)) else [classify]
        if len(xs) != self.num_views or len(fns) != self.num_views:
            raise ValueError(f'{self.owner}: the memory term expects {self.num_views} feature '
                             f'view(s) and classifier(s), got {len(xs)} and {len(fns)}.')
        total = xs[0].sum() * 0.0
        if self.memories is not None:
            total = total + self.feature_loss(xs, target, fns, loss_fn)
        if self.weight_memory is not None:
            if weight is None or prototype_scores is None:
                raise ValueError(f'{self.owner}: variant={self.variant!r} needs the classifier '
                                 '`weight` rows and `prototype_scores` in the memory term call.')
            total = total + self.weight_loss(xs[0], target, weight, prototype_scores)
        return self.eta * total

    def _write(self, bank: nn.Module, x: torch.Tensor, target: torch.Tensor) -> None:
        if self.variant in ('FR', 'FR+RJ'):
            bank.reset()
            bank.enqueue(x, target, gather=False)  # FR: current (local) batch only
        else:
            bank.enqueue(x, target)

    def _read(self, bank: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
        mem_x, mem_y = bank.get()
        if self.variant == 'FR+RJ' and mem_y.numel():
            gen = counter_generator(bank.seed + 7919, int(bank.step))
            noise = torch.randn(mem_x.shape, generator=gen).to(mem_x.device)
            scale = mem_x.norm(dim=1, keepdim=True) / mem_x.shape[1] ** 0.5
            mem_x = mem_x + self.rj_std * scale * noise
        return mem_x, mem_y

    def _reduced(self, logits: torch.Tensor, labels: torch.Tensor, denom: int,
                 loss_fn: Optional[LossFn]) -> torch.Tensor:
        if loss_fn is not None:
            return loss_fn(logits, labels, denom)
        return F.cross_entropy(logits.float(), labels, reduction='sum') / denom

    def feature_loss(self, xs: List[torch.Tensor], target: torch.Tensor, fns: List[Classify],
                     loss_fn: Optional[LossFn] = None) -> torch.Tensor:
        """Unweighted feature-memory ``L_memory``: write the batch, then the loss, summed over
        views."""
        total = xs[0].sum() * 0.0
        if self.num_views > 1 and self.sharing == 'shared':
            bank = self.memories[0]
            self._write(bank, torch.cat(xs, dim=1), target)
            mem_x, mem_y = self._read(bank)
            if mem_y.numel() == 0:
                return total
            denom = dict(mean=mem_y.numel(), capacity=bank.size, batch=xs[0].shape[0])
            parts = mem_x.to(xs[0].dtype).split(self.dim, dim=1)
            for fn, part in zip(fns, parts):
                total = total + self._reduced(fn(part), mem_y, denom[self.memory_reduction],
                                              loss_fn)
            return total
        for bank, x, fn in zip(self.memories, xs, fns):
            self._write(bank, x, target)
            mem_x, mem_y = self._read(bank)
            if mem_y.numel() == 0:
                continue
            denom = dict(mean=mem_y.numel(), capacity=bank.size, batch=x.shape[0])
            total = total + self._reduced(fn(mem_x.to(x.dtype)), mem_y,
                                          denom[self.memory_reduction], loss_fn)
        return total

    def weight_loss(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                    prototype_scores: PrototypeScores) -> torch.Tensor:
        """Unweighted prototype-memory ``L_memory`` (MBJ-W): write all ``C`` weight rows, then CE
        of the batch against the memorised prototypes pooled per class."""
        bank = self.weight_memory
        bank.enqueue(weight, torch.arange(self.num_classes, device=weight.device), gather=False)
        protos, proto_y = bank.get()
        if proto_y.numel() == 0:
            return x.sum() * 0.0
        sim = prototype_scores(x, protos.to(x.dtype), proto_y)
        logits, present = multi_prototype_logits(sim.float(), proto_y, self.num_classes)
        per_sample = F.cross_entropy(logits, target, reduction='none')
        per_sample = torch.where(present[target], per_sample, torch.zeros_like(per_sample))
        return per_sample.mean()

    def extra_repr(self) -> str:
        return (f'eta={self.eta}, variant={self.variant!r}, memory_reduction='
                f'{self.memory_reduction!r}, num_views={self.num_views}, sharing='
                f'{self.sharing!r}, enabled={self.enabled}')
