"""STG's sample-specific tail augmentation as a part that attaches to any classifier (Eq. 3-4)."""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from lt_plugins.memory.rebalanced_fifo import rank_generator
from lt_plugins.models.stg import (AUGMENT_TYPES, check_threshold, class_strength,
                                   drop_expected_missing, dropout_augment,
                                   gaussian_noise_augment, head_tail_split, stg_augment)

TOKEN_SOURCES = ('prototype', 'classifier')
TOKEN_METRICS = ('cosine', 'euclidean')
SCOPES = ('tail', 'all')


@MODELS.register_module()
class STGFeatureGenerator(BaseModule):
    """STG's feature generator for classifier re-training: tail features replaced by their
    sample-specific augmentation (STG Sec. 3.4, Eq. 3-4).

    Called in training with the classifier's input features ``a (B, d)`` and labels, it returns
    the features the classifier is trained on: for each sample in scope (a tail class,
    ``N_c <= head_threshold``, or every sample with ``augment_scope='all'``) the frozen
    :class:`~lt_plugins.models.stg.SemanticTransformationGenerator` predicts
    ``mu_i, Sigma_i = s(a_i + p_c*)`` with the token of the head class ``c*`` most similar to
    the sample (Table 5), and the feature becomes ``a + (sqrt(Sigma) eps + mu) lambda beta_y``
    (Eq. 3, ``beta_y = sqrt(n_min / n_y)``) on the dimensions where a uniform mask is below
    ``t`` (Eq. 4). Other rows pass unchanged; inference never calls the part. Table 7 controls:
    ``augment='gaussian'`` (``a + std eps``), ``'dropout'`` (feature dropout) or ``'none'``.

    The generator's weights and head-class prototypes come from an STG stage-2 checkpoint
    (``STGGeneratorHead``, trained on the frozen features of the same stage-1 model): a
    checkpoint whose ``head.generator.*`` keys are the bare generator's is mapped onto the
    part's ``generator.generator.*`` when the part sits at ``head.generator`` of a
    ``ComposedClsHead`` (the decoupled classifiers keep those keys while they re-initialise the
    classifier, see ``DecoupledClassifier``). An untrained generator is an error.

    Randomness: each call draws from a generator keyed by ``(seed, step, rank)``; ``aug_seed``
    and ``aug_step`` are buffers, so a resumed run replays the draws. Rows that are augmented
    carry no gradient to the representation (in the decoupled stage it is frozen anyway); the
    other rows keep theirs.

    ``state_owner``: the module on which the part registers its state (the generator and the
    buffers ``class_counts``, ``aug_seed``, ``aug_step``, ``token_fc_*``). Default: the part
    itself. ``STGClsHead`` passes itself, so its checkpoint keys stay those it always had.

    Args:
        in_channels (int): feature dimension ``d``.
        num_classes (int): number of classes ``C``.
        generator (dict): :class:`SemanticTransformationGenerator` config (``in_channels``,
            ``num_classes`` filled in); must match stage 2's.
        augment (str): ``'stg'`` (default), ``'gaussian'``, ``'dropout'`` or ``'none'``.
        lam (float): ``lambda`` of Eq. 3. Defaults to 1.5 (the paper's best).
        mix_threshold (float): ``t`` of Eq. 4. Defaults to 0.5.
        noise_std (float): std of the ``'gaussian'`` control. Defaults to 1.0.
        dropout_p (float): drop probability of the ``'dropout'`` control. Defaults to 0.2.
        head_threshold (int | str): head classes have more than this many training images
            (``'median'`` / ``'q<p>'``: that quantile); stage 2's value. Defaults to 100.
        token_metric (str): ``'cosine'`` (default) or ``'euclidean'`` similarity to the
            head-class prototypes.
        token_source (str): ``'prototype'`` (default) or ``'classifier'`` (the head class the
            stage-1 classifier scores highest; its weights are the ``token_fc_*`` buffers, which
            the owner fills from the stage-2 checkpoint).
        augment_scope (str): ``'tail'`` (default, the paper) or ``'all'``.
        use_mean (bool): keep ``mu`` in Eq. 3 (default); False samples ``sqrt(Sigma) eps``.
        class_counts (Sequence[int], optional): training counts; overrides ClassCountsHook.
        seed (int, optional): key of the draws; None takes ``torch.initial_seed()``.
        owner (str): name in error messages. Defaults to ``'STGFeatureGenerator'``.
        field (str): config path of the part's options in error messages. Defaults to
            ``'model.head.generator'``.
        state_owner (nn.Module, optional): see above. Defaults to None (the part).
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 generator: dict = dict(type='SemanticTransformationGenerator'),
                 augment: str = 'stg',
                 lam: float = 1.5,
                 mix_threshold: float = 0.5,
                 noise_std: float = 1.0,
                 dropout_p: float = 0.2,
                 head_threshold: Union[int, str] = 100,
                 token_metric: str = 'cosine',
                 token_source: str = 'prototype',
                 augment_scope: str = 'tail',
                 use_mean: bool = True,
                 class_counts: Optional[Sequence[int]] = None,
                 seed: Optional[int] = None,
                 owner: str = 'STGFeatureGenerator',
                 field: str = 'model.head.generator',
                 state_owner: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.owner, self.field = str(owner), str(field)
        for name, value, choices in (('augment', augment, AUGMENT_TYPES),
                                     ('augment_scope', augment_scope, SCOPES),
                                     ('token_metric', token_metric, TOKEN_METRICS),
                                     ('token_source', token_source, TOKEN_SOURCES)):
            if value not in choices:
                raise ValueError(f'{owner} {name}={value!r}: choose one of {choices} '
                                 f'(`{field}.{name}`).')
        if not 0.0 <= float(mix_threshold) <= 1.0:
            raise ValueError(f'`{field}.mix_threshold` must be in [0, 1], got {mix_threshold}.')
        if not 0.0 <= float(dropout_p) < 1.0:
            raise ValueError(f'`{field}.dropout_p` must be in [0, 1), got {dropout_p}.')
        if num_classes is None or int(num_classes) < 1:
            raise ValueError(f'{owner}: num_classes must be >= 1, got {num_classes}.')
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        holder = self if state_owner is None else state_owner
        object.__setattr__(self, '_holder', holder)  # not a sub-module (may be the part)
        gen_cfg = dict(generator)
        gen_cfg.setdefault('in_channels', self.in_channels)
        gen_cfg.setdefault('num_classes', self.num_classes)
        holder.generator = MODELS.build(gen_cfg)
        holder.generator.requires_grad_(False)
        self.augment = augment
        self.lam = float(lam)
        self.mix_threshold = float(mix_threshold)
        self.noise_std = float(noise_std)
        self.dropout_p = float(dropout_p)
        self.head_threshold = check_threshold(head_threshold)
        self.token_metric = token_metric
        self.token_source = token_source
        self.augment_scope = augment_scope
        self.use_mean = bool(use_mean)
        if token_source == 'classifier':  # the stage-1 classifier, frozen, for token choice
            holder.register_buffer('token_fc_weight',
                                   torch.zeros(self.num_classes, self.in_channels))
            holder.register_buffer('token_fc_bias', torch.zeros(self.num_classes))
            holder.register_buffer('token_fc_loaded', torch.zeros((), dtype=torch.bool))
        holder.register_buffer('class_counts', torch.zeros(self.num_classes, dtype=torch.long))
        seed = torch.initial_seed() if seed is None else int(seed)
        holder.register_buffer('aug_seed', torch.tensor(seed & (2**63 - 1), dtype=torch.long))
        holder.register_buffer('aug_step', torch.zeros((), dtype=torch.long))
        self._explicit_counts = class_counts is not None
        if class_counts is not None:
            self._write_counts(class_counts)
        self._expected_missing = set()
        if holder is self:
            self._register_load_state_dict_pre_hook(self._earlier_stage_keys)
            self.register_load_state_dict_post_hook(drop_expected_missing)

    @property
    def generator_net(self) -> nn.Module:
        """The :class:`SemanticTransformationGenerator` (wherever it is registered)."""
        return self._holder.generator

    # -- class counts -------------------------------------------------------------------------
    def _write_counts(self, counts) -> None:
        counts = torch.as_tensor(counts, dtype=torch.long).reshape(-1)
        if counts.numel() != self.num_classes:
            raise ValueError(f'{self.owner}: num_classes={self.num_classes} but the class '
                             f'counts have {counts.numel()} entries: fix `num_classes` or '
                             f'`{self.field}.class_counts`.')
        if self.augment_scope == 'tail':
            head_tail_split(counts, self.head_threshold)  # fail early on a degenerate split
        buf = self._holder.class_counts
        buf.copy_(counts.to(buf.device))

    def set_class_counts(self, counts) -> None:
        """Receive ``N_c`` from ``ClassCountsHook`` (an explicit ``class_counts`` wins)."""
        if not self._explicit_counts:
            self._write_counts(counts)

    def head_mask(self) -> torch.Tensor:
        """``(C,)`` bool mask of the head classes."""
        return head_tail_split(self._holder.class_counts, self.head_threshold)

    # -- checkpoints (the part as its own state owner) ----------------------------------------
    def _earlier_stage_keys(self, state_dict, prefix, *args) -> None:
        """A stage-2 checkpoint holds the bare generator at this prefix (``head.generator.*``
        of ``STGGeneratorHead``): move its keys under ``generator.``; the part's own buffers
        are then expected to be missing (counts come from ClassCountsHook, draws start anew)."""
        for key in self.generator_net.state_dict():
            old, new = prefix + key, f'{prefix}generator.{key}'
            if old in state_dict and new not in state_dict:
                state_dict[new] = state_dict.pop(old)
        expected = {prefix + 'class_counts'}
        if prefix + 'aug_seed' not in state_dict:  # an earlier stage's checkpoint
            expected |= {prefix + k for k in ('aug_seed', 'aug_step', 'token_fc_weight',
                                              'token_fc_bias', 'token_fc_loaded')}
        if self.augment != 'stg':  # the noise controls never use the generator network
            expected |= {f'{prefix}generator.{k}' for k in self.generator_net.state_dict()}
        self._expected_missing = expected

    def train(self, mode: bool = True) -> 'STGFeatureGenerator':
        """The generator stays in eval mode (its BN uses the stage-2 statistics)."""
        super().train(mode)
        self.generator_net.eval()
        return self

    # -- augmentation -------------------------------------------------------------------------
    def check_generator(self) -> None:
        """Refuse an untrained generator (no stage-2 checkpoint loaded)."""
        if int(self.generator_net.trained_iters) == 0:
            raise RuntimeError(
                f'{self.owner} (STG stage 3) has an untrained generator: the stage-2 checkpoint '
                'was not loaded. Set `load_from` to the stage-2 checkpoint (the last '
                '`epoch_*.pth` of the stg ..._stage2 config\'s work_dir), or set '
                f'`{self.field}.augment=\'none\'` for plain classifier re-training.')

    def select_head_class(self, feats: torch.Tensor) -> torch.Tensor:
        """``(n,)`` head class whose token each (tail) feature borrows: the most similar
        head-class prototype (``token_source='prototype'``) or the stage-1 classifier's
        top-scoring head class (``'classifier'``)."""
        head = self.head_mask().to(feats.device)
        if self.token_source == 'prototype':
            return self.generator_net.select_head_class(feats, head, self.token_metric)
        h = self._holder
        if not bool(h.token_fc_loaded):
            raise RuntimeError(
                f"{self.owner}(token_source='classifier') has no stage-1 classifier: load the "
                'stage-2 checkpoint (`load_from`), whose `fc` is the stage-1 one.')
        logits = F.linear(feats, h.token_fc_weight.to(feats), h.token_fc_bias.to(feats))
        logits = logits.masked_fill(~head[None, :], float('-inf'))
        return logits.argmax(dim=1)

    def scope(self, labels: torch.Tensor) -> torch.Tensor:
        """``(B,)`` bool: the samples that are augmented."""
        if self.augment_scope == 'tail':
            return ~self.head_mask().to(labels.device)[labels]
        return torch.ones_like(labels, dtype=torch.bool)

    @torch.no_grad()
    def augment_features(self, feats: torch.Tensor, labels: torch.Tensor,
                         generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Replace the features of the samples in scope by their augmentation.

        Args:
            feats (Tensor): ``(B, d)``.
            labels (Tensor): ``(B,)``.
            generator (torch.Generator, optional): random source (default: global RNG).

        Returns:
            Tensor: ``(B, d)``; rows outside the scope are unchanged.
        """
        if self.augment == 'none':
            return feats
        scope = self.scope(labels)
        if not bool(scope.any()):
            return feats
        a, y = feats[scope], labels[scope]
        if self.augment == 'stg':
            self.check_generator()
            net = self.generator_net.eval()
            token = self.select_head_class(a)
            mu, sigma = net(a, token)
            strength = class_strength(self._holder.class_counts).to(a.device)[y]
            if not self.use_mean:
                mu = torch.zeros_like(mu)
            new = stg_augment(a, mu.to(a), sigma.to(a), strength, self.lam, self.mix_threshold,
                              generator)
        elif self.augment == 'gaussian':
            new = gaussian_noise_augment(a, self.noise_std, generator)
        else:
            new = dropout_augment(a, self.dropout_p, generator)
        out = feats.clone()
        out[scope] = new.to(out.dtype)
        return out

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Training features ``(B, d)`` for the classifier: this step's draws (keyed by
        ``(aug_seed, aug_step, rank)``, then ``aug_step += 1``) applied to the rows in scope."""
        h = self._holder
        generator = rank_generator(int(h.aug_seed), int(h.aug_step), feats.device)
        h.aug_step += 1
        labels = labels.to(feats.device).long()
        out = self.augment_features(feats.detach(), labels, generator)
        if not feats.requires_grad:
            return out
        if self.augment == 'none':
            return feats
        return torch.where(self.scope(labels)[:, None], out, feats)


__all__ = ['STGFeatureGenerator']
