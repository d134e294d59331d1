"""STG stage 3: classifier re-training with sample-specific tail augmentation (Sec. 3.4)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from lt_plugins.memory.rebalanced_fifo import rank_generator
from lt_plugins.models.stg import (AUGMENT_TYPES, check_threshold, class_strength,
                                   dropout_augment, gaussian_noise_augment, head_tail_split,
                                   stg_augment)
from .stg_generator_head import _drop_expected_missing, stage_tag_of

CLASSIFIERS = ('crt', 'lws')
TOKEN_SOURCES = ('prototype', 'classifier')
SCOPES = ('tail', 'all')
_STAGE2_ONLY = ('smoother.', 'dictionary.')


@MODELS.register_module()
class STGClsHead(LinearClsHead):
    """Stage-3 head of STG: cRT / LWS classifier trained on STG-augmented tail features.

    For each training sample of a tail class (``N_c <= head_threshold``) the frozen generator
    predicts ``mu_i, Sigma_i = s(a_i + p_c*)`` where ``c*`` is the head class most similar to
    the sample (cosine similarity between ``a_i`` and the stage-2 head-class mean features;
    Table 5: samples of one tail class borrow different head tokens); the feature is then
    replaced by Eq. 3-4: ``a_aug = a + (sqrt(Sigma) eps + mu) lambda beta_y``,
    ``beta_y = sqrt(n_min / n_y)``, mixed per dimension with threshold ``t``. The classifier
    is trained with CE on the result (Eq. 5). Head samples pass unchanged; inference never
    augments.

    Table 7 switches: ``augment='gaussian'`` (``a + std eps``), ``'dropout'`` (feature dropout
    with ``p``) or ``'none'`` (plain cRT / LWS; identical to ``LinearClsHead`` re-training).

    Classifier modes (Kang et al. 2019): ``'crt'`` re-initialises ``fc`` when the checkpoint
    comes from an earlier stage and trains it; ``'lws'`` keeps the stage-1 ``fc`` frozen and
    learns a per-class logit scale ``lws_scale`` (initialised to 1). Resuming a stage-3
    checkpoint restores everything as saved (the stage is recorded in the ``stg_stage``
    buffer).

    Args:
        num_classes (int): number of classes ``C``.
        in_channels (int): feature dimension ``d``.
        generator (dict): config of :class:`SemanticTransformationGenerator` (must match
            stage 2's; its weights come from the stage-2 checkpoint).
        augment (str): ``'stg'`` (default), ``'gaussian'``, ``'dropout'`` or ``'none'``.
        lam (float): ``lambda`` of Eq. 3. Defaults to 1.5 (paper's best).
        mix_threshold (float): ``t`` of Eq. 4. Defaults to 0.5.
        noise_std (float): std of the ``'gaussian'`` baseline. Defaults to 1.0.
        dropout_p (float): drop probability of the ``'dropout'`` baseline. Defaults to 0.2.
        head_threshold (int | str): head classes have more than this many training images
            (``'median'`` / ``'q<p>'``: that quantile of the counts); use stage 2's value.
            Defaults to 100.
        token_metric (str): similarity for the token selection, ``'cosine'`` (default) or
            ``'euclidean'``.
        token_source (str): how a tail sample's head class is chosen: ``'prototype'``
            (default; most similar head-class mean feature by ``token_metric``) or
            ``'classifier'`` (the head class with the largest logit of the *stage-1*
            classifier, kept in the buffers ``token_fc_weight`` / ``token_fc_bias``, filled
            from the stage-2 checkpoint's ``fc`` before cRT re-initialises it).
        augment_scope (str): augment ``'tail'`` samples (default, the paper) or ``'all'``.
        use_mean (bool): keep the predicted mean ``mu`` in Eq. 3 (default, the paper). For a
            tail sample with a head token, ``mu`` approximates the offset towards that head
            class's centre; ``False`` samples ``sqrt(Sigma) eps`` only (a diagnostic).
        classifier (str): ``'crt'`` (default) or ``'lws'``.
        class_counts (Sequence[int], optional): training counts; overrides ClassCountsHook.
        seed (int, optional): key of the augmentation draws in training: each batch draws
            from a generator keyed by ``(seed, step, rank)``; ``seed`` and ``step`` are
            buffers (``aug_seed``, ``aug_step``), so resume replays the draws. ``None``
            takes ``torch.initial_seed()`` at construction (the runner's seed).
        **kwargs: ``LinearClsHead`` arguments (``loss``, ``topk``, ``init_cfg``).
    """

    STAGE = 3

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
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
                 classifier: str = 'crt',
                 class_counts: Optional[Sequence[int]] = None,
                 seed: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, **kwargs)
        for name, value, choices in (('augment', augment, AUGMENT_TYPES),
                                     ('classifier', classifier, CLASSIFIERS),
                                     ('augment_scope', augment_scope, SCOPES),
                                     ('token_metric', token_metric, ('cosine', 'euclidean')),
                                     ('token_source', token_source, TOKEN_SOURCES)):
            if value not in choices:
                raise ValueError(f'STGClsHead {name}={value!r}: choose one of {choices} '
                                 f'(`model.head.{name}`).')
        if not 0.0 <= float(mix_threshold) <= 1.0:
            raise ValueError(f'`model.head.mix_threshold` must be in [0, 1], got {mix_threshold}.')
        if not 0.0 <= float(dropout_p) < 1.0:
            raise ValueError(f'`model.head.dropout_p` must be in [0, 1), got {dropout_p}.')
        gen_cfg = dict(generator)
        gen_cfg.setdefault('in_channels', in_channels)
        gen_cfg.setdefault('num_classes', num_classes)
        self.generator = MODELS.build(gen_cfg)
        self.generator.requires_grad_(False)
        self.augment = augment
        self.lam = float(lam)
        self.mix_threshold = float(mix_threshold)
        self.noise_std = float(noise_std)
        self.dropout_p = float(dropout_p)
        self.head_threshold = check_threshold(head_threshold)
        self.token_metric = token_metric
        self.token_source = token_source
        if token_source == 'classifier':  # the stage-1 classifier, frozen, for token choice
            self.register_buffer('token_fc_weight', self.fc.weight.detach().clone())
            self.register_buffer('token_fc_bias', self.fc.bias.detach().clone())
            self.register_buffer('token_fc_loaded', torch.zeros((), dtype=torch.bool))
        self.augment_scope = augment_scope
        self.use_mean = bool(use_mean)
        self.classifier = classifier
        if classifier == 'lws':
            self.fc.requires_grad_(False)
            self.lws_scale = nn.Parameter(torch.ones(num_classes))
        self.register_buffer('class_counts', torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer('stg_stage', torch.tensor(self.STAGE))
        seed = torch.initial_seed() if seed is None else int(seed)
        self.register_buffer('aug_seed', torch.tensor(seed & (2**63 - 1), dtype=torch.long))
        self.register_buffer('aug_step', torch.zeros((), dtype=torch.long))
        self._explicit_counts = class_counts is not None
        if class_counts is not None:
            self._write_counts(class_counts)
        self._expected_missing = set()
        self.register_load_state_dict_post_hook(_drop_expected_missing)

    # -- class counts ---------------------------------------------------------------------
    def _write_counts(self, counts) -> None:
        counts = torch.as_tensor(counts, dtype=torch.long).reshape(-1)
        if counts.numel() != self.num_classes:
            raise ValueError(f'{type(self).__name__}: num_classes={self.num_classes} but the '
                             f'class counts have {counts.numel()} entries: fix '
                             '`model.head.num_classes` or `class_counts`.')
        if self.augment_scope == 'tail':
            head_tail_split(counts, self.head_threshold)
        self.class_counts.copy_(counts.to(self.class_counts.device))

    def set_class_counts(self, counts) -> None:
        """Receive ``N_c`` from ``ClassCountsHook`` (an explicit ``class_counts`` wins)."""
        if not self._explicit_counts:
            self._write_counts(counts)

    def head_mask(self) -> torch.Tensor:
        """``(C,)`` bool mask of the head classes."""
        return head_tail_split(self.class_counts, self.head_threshold)

    # -- modes ----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> 'STGClsHead':
        """The generator stays in eval mode (its BN uses the stage-2 statistics)."""
        super().train(mode)
        self.generator.eval()
        return self

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        source = stage_tag_of(state_dict, prefix)
        state_dict.pop(prefix + 'stg_stage', None)
        for key in [k for k in state_dict if k.startswith(prefix) and
                    k[len(prefix):].startswith(_STAGE2_ONLY)]:
            state_dict.pop(key)
        expected_missing = [prefix + 'stg_stage', prefix + 'class_counts']
        if source < self.STAGE:
            expected_missing += [prefix + 'lws_scale', prefix + 'aug_seed', prefix + 'aug_step']
            if self.token_source == 'classifier':
                expected_missing += [prefix + k for k in
                                     ('token_fc_weight', 'token_fc_bias', 'token_fc_loaded')]
                if prefix + 'fc.weight' in state_dict:  # the earlier stage's classifier
                    state_dict[prefix + 'token_fc_weight'] = state_dict[prefix + 'fc.weight']
                    state_dict[prefix + 'token_fc_bias'] = state_dict[prefix + 'fc.bias']
                    state_dict[prefix + 'token_fc_loaded'] = torch.ones((), dtype=torch.bool)
            if self.classifier == 'crt':  # cRT: re-initialised classifier
                dropped = [state_dict.pop(prefix + k, None) for k in ('fc.weight', 'fc.bias')]
                if any(d is not None for d in dropped):
                    print_log(f'STGClsHead: stage-{source} checkpoint, classifier=crt: '
                              're-initialising `fc` (classifier re-training).', 'current')
                expected_missing += [prefix + 'fc.weight', prefix + 'fc.bias']
        self._expected_missing = set(expected_missing)  # dropped by the post hook
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    # -- forward --------------------------------------------------------------------------
    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Logits ``W a + b`` (cRT) or ``lws_scale * (W a + b)`` (LWS)."""
        logits = self.fc(self.pre_logits(feats))
        if self.classifier == 'lws':
            logits = logits * self.lws_scale
        return logits

    def _check_generator(self) -> None:
        if int(self.generator.trained_iters) == 0:
            raise RuntimeError(
                'STGClsHead (stage 3) has an untrained generator: the stage-2 checkpoint was '
                'not loaded. Set `load_from` to the stage-2 checkpoint (the last '
                '`epoch_*.pth` of the stg ..._stage2 config\'s work_dir), or set '
                '`model.head.augment=\'none\'` for plain classifier re-training.')

    def select_head_class(self, feats: torch.Tensor) -> torch.Tensor:
        """``(n,)`` head class whose token each (tail) feature borrows: the most similar
        head-class prototype (``token_source='prototype'``) or the stage-1 classifier's
        top-scoring head class (``'classifier'``)."""
        head = self.head_mask().to(feats.device)
        if self.token_source == 'prototype':
            return self.generator.select_head_class(feats, head, self.token_metric)
        if not bool(self.token_fc_loaded):
            raise RuntimeError(
                "STGClsHead(token_source='classifier') has no stage-1 classifier: load the "
                'stage-2 checkpoint (`load_from`), whose `fc` is the stage-1 one.')
        logits = F.linear(feats, self.token_fc_weight.to(feats), self.token_fc_bias.to(feats))
        logits = logits.masked_fill(~head[None, :], float('-inf'))
        return logits.argmax(dim=1)

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
        if self.augment_scope == 'tail':
            scope = ~self.head_mask()[labels]
        else:
            scope = torch.ones_like(labels, dtype=torch.bool)
        if not bool(scope.any()):
            return feats
        a, y = feats[scope], labels[scope]
        if self.augment == 'stg':
            self._check_generator()
            self.generator.eval()
            token = self.select_head_class(a)
            mu, sigma = self.generator(a, token)
            strength = class_strength(self.class_counts).to(a.device)[y]
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

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        """CE (the configured ``loss``) on the augmented features (Eq. 5)."""
        a = self.pre_logits(feats).detach()
        if 'gt_score' in data_samples[0]:
            raise ValueError('STGClsHead: stage 3 takes hard labels; remove the batch '
                             'augments (Mixup/CutMix) inherited from stage 1 '
                             '(`model.train_cfg=None`).')
        labels = torch.cat([ds.gt_label for ds in data_samples]).to(a.device)
        generator = rank_generator(int(self.aug_seed), int(self.aug_step), a.device)
        self.aug_step += 1
        a = self.augment_features(a, labels, generator)
        return super().loss((a, ), data_samples, **kwargs)
