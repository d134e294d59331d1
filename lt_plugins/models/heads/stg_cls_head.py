"""STG stage 3: classifier re-training with sample-specific tail augmentation (Sec. 3.4)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from lt_plugins.models.parts.feature_generator import STGFeatureGenerator
from lt_plugins.models.stg import drop_expected_missing

from .stg_generator_head import stage_tag_of

CLASSIFIERS = ('crt', 'lws')
_STAGE2_ONLY = ('smoother.', 'dictionary.')


def _part_option(name: str) -> property:
    """A setting of the head's :class:`STGFeatureGenerator`, read and written through."""
    return property(lambda self: getattr(self.feature_generator, name),
                    lambda self, value: setattr(self.feature_generator, name, value),
                    doc=f'``{name}`` of the feature generator part.')


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

    A preset of :class:`~lt_plugins.models.parts.STGFeatureGenerator` (the augmentation as a
    part, which ``ComposedClsHead(generator=...)`` attaches to any classifier): the part is
    ``head.feature_generator`` (a plain attribute) and registers its generator and buffers on
    this head, so the checkpoint keys (``generator.*``, ``class_counts``, ``aug_seed``,
    ``aug_step``, ``token_fc_*``) and outputs are those of the head before the split.

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
        if classifier not in CLASSIFIERS:
            raise ValueError(f'STGClsHead classifier={classifier!r}: choose one of '
                             f'{CLASSIFIERS} (`model.head.classifier`).')
        # The part registers its generator and buffers on this head (the keys it always had)
        # and is kept as a plain attribute, not a sub-module.
        part = STGFeatureGenerator(
            in_channels=in_channels, num_classes=num_classes, generator=generator,
            augment=augment, lam=lam, mix_threshold=mix_threshold, noise_std=noise_std,
            dropout_p=dropout_p, head_threshold=head_threshold, token_metric=token_metric,
            token_source=token_source, augment_scope=augment_scope, use_mean=use_mean,
            class_counts=class_counts, seed=seed, owner='STGClsHead', field='model.head',
            state_owner=self)
        object.__setattr__(self, 'feature_generator', part)
        self.classifier = classifier
        if classifier == 'lws':
            self.fc.requires_grad_(False)
            self.lws_scale = nn.Parameter(torch.ones(num_classes))
        self.register_buffer('stg_stage', torch.tensor(self.STAGE))
        self._expected_missing = set()
        self.register_load_state_dict_post_hook(drop_expected_missing)

    # -- the part's options and state -------------------------------------------------------
    augment = _part_option('augment')
    lam = _part_option('lam')
    mix_threshold = _part_option('mix_threshold')
    noise_std = _part_option('noise_std')
    dropout_p = _part_option('dropout_p')
    head_threshold = _part_option('head_threshold')
    token_metric = _part_option('token_metric')
    token_source = _part_option('token_source')
    augment_scope = _part_option('augment_scope')
    use_mean = _part_option('use_mean')

    def set_class_counts(self, counts) -> None:
        """Receive ``N_c`` from ``ClassCountsHook`` (an explicit ``class_counts`` wins)."""
        self.feature_generator.set_class_counts(counts)

    def head_mask(self) -> torch.Tensor:
        """``(C,)`` bool mask of the head classes."""
        return self.feature_generator.head_mask()

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
        self.feature_generator.check_generator()

    def select_head_class(self, feats: torch.Tensor) -> torch.Tensor:
        """``(n,)`` head class whose token each (tail) feature borrows: the most similar
        head-class prototype (``token_source='prototype'``) or the stage-1 classifier's
        top-scoring head class (``'classifier'``)."""
        return self.feature_generator.select_head_class(feats)

    def augment_features(self, feats: torch.Tensor, labels: torch.Tensor,
                         generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Replace the features of the samples in scope by their augmentation
        (:meth:`STGFeatureGenerator.augment_features`); rows outside the scope unchanged."""
        return self.feature_generator.augment_features(feats, labels, generator)

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        """CE (the configured ``loss``) on the augmented features (Eq. 5)."""
        a = self.pre_logits(feats).detach()
        if 'gt_score' in data_samples[0]:
            raise ValueError('STGClsHead: stage 3 takes hard labels; remove the batch '
                             'augments (Mixup/CutMix) inherited from stage 1 '
                             '(`model.train_cfg=None`).')
        labels = torch.cat([ds.gt_label for ds in data_samples]).to(a.device)
        a = self.feature_generator(a, labels)  # this step's keyed draws; aug_step += 1
        return super().loss((a, ), data_samples, **kwargs)
