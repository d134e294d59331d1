"""RIDE multi-expert head: per-expert classifiers, diversity loss, router, optional MBJ memory
and IEM memory read."""
from functools import partial
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..parts.memory_reader import EpisodicMemoryReader
from ..parts.feature_generator import STGFeatureGenerator
from ..parts.memory_term import MBJMemoryTerm
from .normed_linear_head import fill_loss_scale

MEMORY_SHARING = ('per_expert', 'shared')
NOISE_AUGMENTS = ('gaussian', 'dropout')


@MODELS.register_module()
class RIDEHead(ClsHead):
    """Head of RIDE (Wang et al., ICLR 2021): ``K`` expert classifiers on ``K`` feature vectors.

    Receives ``(x_1, ..., x_K)``, one pooled feature per expert (from
    :class:`~lt_plugins.models.backbones.MultiExpertBackbone` + ``GlobalAveragePooling``).
    Expert ``k``'s logits are ``z_k = s * cos(W_k, x_k)`` (cosine classifier, RIDE with LDAM)
    or ``W_k x_k + b_k`` (``classifier='linear'``, RIDE with CE); the ensemble logits are
    ``z = mean_k z_k`` (Sec. 3.1), used for prediction.

    Training loss (Sec. 3.2, summed over experts as in the reference code):
    ``L = sum_k [ L_cls(z_k, y) + L_div(z_k, z) ]`` with ``L_cls`` the configured ``loss``
    (``LDAMLoss``, whose DRW weights ``DRWHook`` switches on; or CE) and ``L_div``
    :class:`~lt_plugins.models.losses.RIDEDiversityLoss` (KL between the temperature-scaled
    ensemble and expert distributions, class-frequency dependent temperature after the
    re-weighting epoch). Logged separately as ``loss_cls`` and ``loss_diversity``.

    Router (Sec. 3.3, "expert assignment"; ``router=dict(...)``): for ``k < K``, a small MLP
    decides from expert ``k``'s normalised feature (``Linear(d, hidden)``-ReLU) and the top
    ``top_choices`` values of the mean logits of experts ``1..k`` (sorted) whether expert
    ``k + 1`` should be consulted (``Linear(hidden + top_choices, 1)``, shared over ``k`` by
    default). Trained as RIDE does, in a separate short stage with everything else frozen
    (``train_router=True``, :class:`~lt_plugins.models.classifiers.RIDEClassifier` freezes
    the rest): binary CE with ``pos_weight``, target 1 when the ensemble of experts ``1..k``
    is wrong but some ensemble ``1..j`` (``j > k``) is right; averaged over the ``K - 1``
    routers. At test time the classifier runs the experts one by one and stops for a sample
    when its router says no; every prediction carries ``num_experts`` (experts used).
    While ``train_router`` is False the router's parameters are frozen (unused, so DDP does
    not wait for their gradients).

    MBJ + RIDE (``mbj=dict(...)``): MBJ's feature memory (Liu et al. 2021, Eq. 1-2) on the
    multi-expert model. ``L += eta * sum_k L_cls(classifier_k(memory_k features), labels)``.

    * ``sharing='per_expert'`` (default): one :class:`RebalancedFIFOMemory` per expert, each
      holding that expert's own features (independent admission draws, seed ``+ k``). Why:
      the experts have separate last stages, so their features live in different spaces;
      MBJ's jitter is the drift of *one* feature extractor across iterations, and its memory
      loss trains the classifier that reads that extractor's features. A memory per expert is
      the only form in which every stored feature is read by the classifier of the network
      that produced it, and independent admissions give each expert different tail samples,
      in the spirit of RIDE's diversity.
    * ``sharing='shared'``: one memory whose slots hold the concatenation ``[x_1, ..., x_K]`` of
      an admitted sample (one admission draw, one ring); expert ``k`` reads its slice. Same
      memory size in floats, all experts see the same memorised samples.

    ``memory_enabled`` is switched by ``MBJMemorySwitchHook`` (``set_memory_enabled``), as for
    ``MBJClsHead``; the memory term is computed with the head's classification loss (MBJ Eq. 2
    uses the batch loss's form for both terms). The memory logic is
    :class:`~lt_plugins.models.parts.MBJMemoryTerm` with one view per expert (``memory_term``,
    a plain attribute); its banks are registered here as ``memories`` (same checkpoint keys).

    RIDE + IEM memory read (``memory_reader=dict(...)``, issue 14's composition that keeps
    RIDE's classifiers): an :class:`~lt_plugins.models.parts.EpisodicMemoryReader` keyed by
    the sample's expert features, each L2-normalised and concatenated (``K * d``, divided by
    ``sqrt(K)``: unit norm, the space the cosine experts classify in), written in every
    training step with the ensemble's probability of the true class (IEM Eq. 3) and read at
    inference: scores ``(w_cls * softmax(z) + w_mem * read) / (w_cls + w_mem)`` (IEM Eq. 1-2).
    The read needs every expert's feature, so it excludes routed inference (``routing=False``).

    RIDE + feature noise (``generator=dict(augment='gaussian' | 'dropout', ...)``): an
    :class:`~lt_plugins.models.parts.STGFeatureGenerator` that, in training only, replaces the
    tail-class samples' features of *each* expert by a noisy copy (STG Table 7's Gaussian
    noise / dropout controls, independent draws per expert) before the expert classifiers; the
    MBJ memory and the IEM reader see the clean features. STG's own generator is learnt on
    one feature space in stage 2, and RIDE's experts have ``K``, so ``augment='stg'`` is refused.
    Use it in a decoupled stage (``DecoupledClassifier(reinit_head=False)``: RIDE's classifiers
    fine-tuned on its frozen experts).

    Args:
        num_classes (int): ``C``.
        in_channels (int): feature dimension of each expert (``'auto'``).
        num_experts (int): ``K``. Defaults to 4.
        classifier (str): ``'cosine'`` (default) or ``'linear'``.
        scale (float): ``s`` of the cosine classifier. Defaults to 30.
        loss (dict): per-expert classification loss. Defaults to ``LDAMLoss`` (scale filled in).
        diversity (dict, optional): diversity loss config; None disables it. Defaults to
            ``RIDEDiversityLoss(loss_weight=-0.2)``.
        router (dict, optional): ``hidden`` (16), ``top_choices`` (5), ``pos_weight`` (20),
            ``shared_fc`` (True). None: no router.
        train_router (bool): router training stage. Defaults to False.
        routing (bool): use the router at test time (when there is one). Defaults to True.
        mbj (dict, optional): ``memory`` (``RebalancedFIFOMemory`` config; ``size`` defaults to
            ``5 * C``), ``eta`` (15), ``sharing`` (``'per_expert'``), ``memory_enabled`` (True).
        memory_reader (dict, optional): ``EpisodicMemoryReader`` options (``capacity``,
            ``num_neighbors``, ``inference_read``, ``inference_weights``, ...; ``dim`` and
            ``num_classes`` are set by the head). None: no memory read.
        generator (dict, optional): ``STGFeatureGenerator`` options with ``augment``
            ``'gaussian'`` or ``'dropout'`` (``noise_std``, ``dropout_p``, ``head_threshold``,
            ``augment_scope``, ``seed``; ``in_channels`` and ``num_classes`` are set by the
            head). None: no feature noise.
        topk, cal_acc, init_cfg: as in :class:`mmpretrain.models.heads.ClsHead`.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 num_experts: int = 4,
                 classifier: str = 'cosine',
                 scale: float = 30.0,
                 loss: dict = dict(type='LDAMLoss'),
                 diversity: Optional[dict] = dict(type='RIDEDiversityLoss', loss_weight=-0.2),
                 router: Optional[dict] = None,
                 train_router: bool = False,
                 routing: bool = True,
                 mbj: Optional[dict] = None,
                 memory_reader: Optional[dict] = None,
                 generator: Optional[dict] = None,
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        if classifier not in ('cosine', 'linear'):
            raise ValueError(f"RIDEHead: classifier={classifier!r}, choose 'cosine' or 'linear'.")
        logit_scale = float(scale) if classifier == 'cosine' else 1.0
        super().__init__(loss=fill_loss_scale(loss, logit_scale, 'RIDEHead'), topk=topk,
                         cal_acc=cal_acc, init_cfg=init_cfg)
        if num_classes is None or int(num_classes) < 1:
            raise ValueError(f'RIDEHead: num_classes must be >= 1, got {num_classes}.')
        if int(num_experts) < 1:
            raise ValueError(f'RIDEHead: num_experts must be >= 1, got {num_experts}.')
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.num_experts = int(num_experts)
        self.classifier = classifier
        self.scale = logit_scale
        K, C, d = self.num_experts, self.num_classes, self.in_channels
        self.weight = nn.Parameter(torch.empty(K, C, d))
        for k in range(K):
            nn.init.kaiming_uniform_(self.weight.data[k], a=5 ** 0.5)
        if classifier == 'linear':
            self.bias = nn.Parameter(torch.zeros(K, C))
        else:
            self.register_parameter('bias', None)
        self.diversity = MODELS.build(diversity) if diversity is not None else None

        self.train_router = bool(train_router)
        self.routing = bool(routing)
        self.router_hidden = None
        if router is not None:
            self._build_router(dict(router))
        elif train_router:
            raise ValueError('RIDEHead: train_router=True needs `router=dict(...)`.')

        object.__setattr__(self, 'memory_term', None)
        self.memories = None
        if mbj is not None:
            self._build_mbj(dict(mbj))
        self.memory_reader = None
        if memory_reader is not None:
            self._build_reader(dict(memory_reader))
        self.generator = None
        if generator is not None:
            self._build_generator(dict(generator))

    # -- construction ------------------------------------------------------------------------
    def _build_router(self, cfg: dict) -> None:
        unknown = set(cfg) - {'hidden', 'top_choices', 'pos_weight', 'shared_fc'}
        if unknown:
            raise ValueError(f'RIDEHead: unknown router options {sorted(unknown)}; use hidden, '
                             'top_choices, pos_weight, shared_fc.')
        if self.num_experts < 2:
            raise ValueError('RIDEHead: a router needs num_experts >= 2.')
        hidden = int(cfg.get('hidden', 16))
        self.top_choices = int(cfg.get('top_choices', 5))
        if not 1 <= self.top_choices <= self.num_classes:
            raise ValueError(f'RIDEHead: router top_choices={self.top_choices} must be in '
                             f'[1, num_classes={self.num_classes}].')
        self.pos_weight = float(cfg.get('pos_weight', 20.0))
        n = self.num_experts - 1
        self.router_hidden = nn.ModuleList(nn.Linear(self.in_channels, hidden) for _ in range(n))
        self.router_shared_fc = bool(cfg.get('shared_fc', True))
        self.router_fc = nn.ModuleList(
            nn.Linear(hidden + self.top_choices, 1) for _ in range(1 if self.router_shared_fc
                                                                   else n))
        if not self.train_router:
            for p in self.router_parameters():
                p.requires_grad_(False)

    def _build_mbj(self, cfg: dict) -> None:
        unknown = set(cfg) - {'memory', 'eta', 'sharing', 'memory_enabled'}
        if unknown:
            raise ValueError(f'RIDEHead: unknown mbj options {sorted(unknown)}; use memory, eta, '
                             'sharing, memory_enabled.')
        sharing = cfg.get('sharing', 'per_expert')
        if sharing not in MEMORY_SHARING:
            raise ValueError(f'RIDEHead: mbj.sharing={sharing!r}, choose one of '
                             f'{MEMORY_SHARING}.')
        mem = cfg.get('memory', dict(type='RebalancedFIFOMemory', beta=1.5))
        if mem is not None and 'dim' in mem:
            raise ValueError('RIDEHead: mbj.memory.dim is set by the head; remove it.')
        term = MBJMemoryTerm(dim=self.in_channels, num_classes=self.num_classes, memory=mem,
                             eta=cfg.get('eta', 15.0),
                             memory_enabled=cfg.get('memory_enabled', True),
                             num_views=self.num_experts,
                             sharing='per_view' if sharing == 'per_expert' else 'shared',
                             owner='RIDEHead')
        # a plain attribute, not a sub-module: ``memories`` (the term's banks) is the registered
        # one, so checkpoint keys and logged names stay ``memories.<k>.*``
        object.__setattr__(self, 'memory_term', term)
        self.memories = term.memories

    def _build_reader(self, cfg: dict) -> None:
        if self.router_hidden is not None and self.routing:
            raise ValueError('RIDEHead: memory_reader reads the features of all experts, which '
                             'routed inference does not compute; set routing=False.')
        given = {k for k in ('dim', 'num_classes', 'type') if k in cfg}
        if given:
            raise ValueError(f'RIDEHead: memory_reader.{sorted(given)} are set by the head '
                             '(K * in_channels keys, num_classes); remove them.')
        cfg.setdefault('owner', 'RIDEHead')
        self.memory_reader = EpisodicMemoryReader(
            num_classes=self.num_classes, dim=self.num_experts * self.in_channels, **cfg)

    def _build_generator(self, cfg: dict) -> None:
        given = {k for k in ('in_channels', 'num_classes', 'type') if k in cfg}
        if given:
            raise ValueError(f'RIDEHead: generator.{sorted(given)} are set by the head; remove '
                             'them.')
        augment = cfg.get('augment', 'gaussian')
        if augment not in NOISE_AUGMENTS:
            raise ValueError(
                f'RIDEHead: generator.augment={augment!r}; choose one of {NOISE_AUGMENTS}. '
                "STG's generator ('stg') is trained in stage 2 on one feature space, and "
                "RIDE's experts have one each.")
        cfg['augment'] = augment
        cfg.setdefault('owner', 'RIDEHead')
        cfg.setdefault('field', 'model.head.generator')
        self.generator = STGFeatureGenerator(in_channels=self.in_channels,
                                             num_classes=self.num_classes, **cfg)

    def training_features(self, xs: Sequence[torch.Tensor],
                          target: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The features the expert classifiers train on: each expert's own noisy copy of the
        in-scope (tail) rows when there is a ``generator``, else ``xs`` unchanged."""
        if self.generator is None:
            return tuple(xs)
        return tuple(self.generator(x, target) for x in xs)

    def reader_keys(self, feats) -> torch.Tensor:
        """``(N, K * d)`` memory keys: the experts' features, each L2-normalised, concatenated
        and scaled to unit norm."""
        xs = self._check_feats(feats)
        keys = torch.cat([F.normalize(x.float(), dim=1) for x in xs], dim=1)
        return keys / self.num_experts ** 0.5

    def router_parameters(self) -> List[nn.Parameter]:
        if self.router_hidden is None:
            return []
        return list(self.router_hidden.parameters()) + list(self.router_fc.parameters())

    # -- hooks' interface --------------------------------------------------------------------
    def set_class_counts(self, counts) -> None:
        """Check the number of classes (losses and memories receive the counts themselves)."""
        n = torch.as_tensor(counts).numel()
        if n != self.num_classes:
            raise ValueError(f'RIDEHead: num_classes={self.num_classes} but the training set '
                             f'has {n} classes: set model.head.num_classes={n}.')

    def set_memory_enabled(self, enabled: bool) -> None:
        """MBJ memory term on/off (``MBJMemorySwitchHook``); no-op without ``mbj``."""
        if self.memory_term is not None:
            self.memory_term.set_memory_enabled(enabled)

    @property
    def memory_enabled(self) -> bool:
        """Whether the MBJ memory term is on (False without ``mbj``)."""
        return self.memory_term is not None and self.memory_term.enabled

    @property
    def eta(self) -> float:
        """``eta`` of the MBJ memory term (``mbj.eta``)."""
        if self.memory_term is None:
            raise AttributeError('RIDEHead has no MBJ memory term: set `mbj=dict(...)`.')
        return self.memory_term.eta

    @property
    def sharing(self) -> str:
        """``mbj.sharing``: ``'per_expert'`` or ``'shared'``."""
        if self.memory_term is None:
            raise AttributeError('RIDEHead has no MBJ memory term: set `mbj=dict(...)`.')
        return 'per_expert' if self.memory_term.sharing == 'per_view' else 'shared'

    # -- forward -----------------------------------------------------------------------------
    def _check_feats(self, feats) -> Tuple[torch.Tensor, ...]:
        if isinstance(feats, torch.Tensor) or len(feats) != self.num_experts:
            got = 1 if isinstance(feats, torch.Tensor) else len(feats)
            raise ValueError(
                f'RIDEHead expects one feature per expert ({self.num_experts}), got {got}: use '
                "backbone=dict(type='MultiExpertBackbone', num_experts=...) with the same "
                'number of experts and a GlobalAveragePooling neck.')
        return tuple(feats)

    def pre_logits(self, feats) -> Tuple[torch.Tensor, ...]:
        return self._check_feats(feats)

    def expert_logits(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, C)`` of expert ``k`` on its features ``x (N, d)``."""
        w = self.weight[k]
        if self.classifier == 'cosine':
            return self.scale * F.normalize(x, dim=1) @ F.normalize(w, dim=1).t()
        return x @ w.t() + self.bias[k]

    def all_expert_logits(self, feats) -> torch.Tensor:
        """``(K, N, C)`` logits of every expert."""
        xs = self._check_feats(feats)
        return torch.stack([self.expert_logits(k, x) for k, x in enumerate(xs)])

    def forward(self, feats) -> torch.Tensor:
        """Ensemble logits: the mean of the experts' logits."""
        return self.all_expert_logits(feats).mean(0)

    def router_logit(self, k: int, x: torch.Tensor, mean_logits: torch.Tensor) -> torch.Tensor:
        """Router ``k`` (deciding on expert ``k + 1``, 0-based): ``(N,)`` logits of "consult".

        ``x`` is expert ``k``'s feature, ``mean_logits`` the mean logits of experts ``0..k``.
        """
        h = F.relu(self.router_hidden[k](F.normalize(x, dim=1)))
        top = mean_logits.topk(self.top_choices, dim=1).values
        fc = self.router_fc[0 if self.router_shared_fc else k]
        return fc(torch.cat([top, h], dim=1)).squeeze(1)

    # -- loss --------------------------------------------------------------------------------
    def loss(self, feats, data_samples: List[DataSample], **kwargs) -> dict:
        if 'gt_score' in data_samples[0]:
            raise ValueError('RIDEHead needs hard labels (LDAM margins, router targets, MBJ '
                             'memory): remove Mixup/CutMix from `model.train_cfg`.')
        xs = self._check_feats(feats)
        target = torch.cat([ds.gt_label for ds in data_samples]).to(xs[0].device)
        if self.train_router:
            return self._router_loss(xs, target)
        logits = self.all_expert_logits(self.training_features(xs, target))
        ensemble = logits.mean(0)
        losses = dict()
        losses['loss_cls'] = sum(self.loss_module(z, target, avg_factor=z.shape[0])
                                 for z in logits)
        if self.diversity is not None:
            losses['loss_diversity'] = sum(self.diversity(z, ensemble) for z in logits)
        if self.memory_enabled:
            losses['loss_memory'] = self.memory_term(
                xs, target, [partial(self.expert_logits, k) for k in range(self.num_experts)],
                loss_fn=self._memory_loss_fn)
        if self.memory_reader is not None:
            if self.generator is not None:  # the value is the clean ensemble's confidence
                with torch.no_grad():
                    ensemble = self.all_expert_logits(xs).mean(0)
            self.memory_reader.write(self.reader_keys(xs).detach(), ensemble.detach(), target)
        if self.cal_acc:
            from mmpretrain.evaluation import Accuracy
            acc = Accuracy.calculate(ensemble, target, topk=self.topk)
            losses.update({f'accuracy_top-{k}': a for k, a in zip(self.topk, acc)})
        return losses

    def _memory_loss_fn(self, logits: torch.Tensor, labels: torch.Tensor,
                        denom: int) -> torch.Tensor:
        """The configured ``loss`` (e.g. LDAM with its DRW weights) on memorised features."""
        return self.loss_module(logits, labels, avg_factor=denom)

    def router_targets(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(N, K - 1)`` router targets from ``(K, N, C)`` expert logits (RIDE Sec. 3.3).

        ``correct[:, k]``: the ensemble of experts ``0..k`` predicts ``target``. Router ``k``'s
        target is ``~correct[:, k] & correct[:, k+1:].any(1)``: consult more experts exactly when
        the current ensemble is wrong and a larger one is right.
        """
        cum = logits.cumsum(0)
        correct = (cum.argmax(-1) == target.view(1, -1)).t()  # (N, K)
        later = correct.int().flip(1).cummax(1).values.flip(1).bool()  # any right from k on
        return (~correct[:, :-1]) & later[:, 1:]

    def _router_loss(self, xs: Sequence[torch.Tensor], target: torch.Tensor) -> dict:
        with torch.no_grad():
            logits = self.all_expert_logits(xs)
            helpful = self.router_targets(logits, target)
            cum = logits.cumsum(0)
        pos_weight = logits.new_tensor([self.pos_weight])
        total = xs[0].sum() * 0.0
        for k in range(self.num_experts - 1):
            pred = self.router_logit(k, xs[k].detach(), cum[k] / (k + 1))
            total = total + F.binary_cross_entropy_with_logits(
                pred, helpful[:, k].to(pred.dtype), pos_weight=pos_weight)
        return dict(loss_router=total / (self.num_experts - 1),
                    router_target_rate=helpful.float().mean().detach())

    # -- predict -----------------------------------------------------------------------------
    def predict(self, feats, data_samples: Optional[List[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """All experts' mean (averaged with the memory read when there is a reader); each
        sample records ``num_experts = K``."""
        scores = self(feats)
        used = torch.full((scores.shape[0], ), self.num_experts, dtype=torch.long)
        if self.memory_reader is not None:
            with torch.no_grad():
                probs = self.memory_reader.scores(self.reader_keys(feats), scores)
            out = self.predictions_with_usage(scores, used, data_samples)
            for sample, score in zip(out, probs):
                sample.set_pred_score(score).set_pred_label(score.argmax(0, keepdim=True))
            return out
        return self.predictions_with_usage(scores, used, data_samples)

    def predictions_with_usage(self, scores: torch.Tensor, used: torch.Tensor,
                               data_samples: Optional[List[Optional[DataSample]]]
                               ) -> List[DataSample]:
        out = self._get_predictions(scores, data_samples)
        for sample, n in zip(out, used.tolist()):
            sample.set_field(int(n), 'num_experts', field_type='metainfo')
        return out
