"""A classification head composed of parts: a classifier, an MBJ memory term, a memory reader,
a feature generator, a post-hoc logit adjustment."""
import copy
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class ComposedClsHead(BaseModule):
    """Head that combines a plain classifier with the parts the config names.

    * ``classifier``: any single-vector classification head whose ``forward(feats)`` gives the
      logits of ``feats[-1]``: ``LinearClsHead`` (linear), ``NormedLinearClsHead`` (cosine,
      with LDAM), ``LWSHead``, ``TauNormHead``, ``AFAClsHead`` (behind an ``AFANeck``). Its own
      ``loss(feats, data_samples, **kwargs)`` is the batch loss (``L_batch`` of MBJ Eq. 2; AFA's
      ``L_ori + lambda_t L_all`` with the neck's ``gen_labels``), its ``topk``/``cal_acc``
      apply. The memory parts see the real samples only: the first ``len(data_samples)``
      feature rows (an ``AFANeck`` appends its generated features after them).
    * ``memory_term`` (optional): an :class:`~lt_plugins.models.parts.MBJMemoryTerm` config;
      adds ``loss_memory = eta * L_memory`` (MBJ Eq. 2), the classifier (with its batch
      features, the classifier's input) as the classifier callable. Feature-memory variants
      (``'F'``, ``'FR'``, ``'FR+RJ'``); the weight-memory ones stay with ``MBJClsHead``.
      ``MBJMemorySwitchHook`` switches it (it is a sub-module with ``set_memory_enabled``).
    * ``memory_reader`` (optional): an :class:`~lt_plugins.models.parts.EpisodicMemoryReader`
      config; written in every training step with the classifier's input features and
      read at inference: predictions are the weighted mean of the classifier's softmax and the
      memory read (IEM Eq. 1-3, e.g. "cRT classifier + IEM memory read").
    * ``generator`` (optional): a feature generator for training, an
      :class:`~lt_plugins.models.parts.STGFeatureGenerator` config: in :meth:`loss` the real
      samples' features are replaced by their STG augmentation (tail rows, STG Eq. 3-4) before
      the classifier's loss; the memory parts still see the real features, inference never
      augments. Its generator comes from an STG stage-2 checkpoint trained on the same frozen
      representation; the decoupled classifiers keep ``head.generator.*`` of that checkpoint
      while they re-initialise the classifier (:attr:`stage_carried_keys`). Token choice by
      prototype only (``token_source='classifier'`` stays with ``STGClsHead``).
    * ``logit_adjustment`` (optional): a
      :class:`~lt_plugins.models.parts.PostHocLogitAdjustment` config; inference only: the
      classifier's logits become ``z - tau log pi`` (Menon et al. 2021, Eq. 9) before they are
      predicted from (or, with a memory reader, averaged with its read). Training never sees
      it, so any trained single-classifier checkpoint can be read this way.

    ``num_classes`` and ``in_channels`` are filled into every part. Data flow as in DESIGN.md:
    features -> (generator, training only) -> classifier logits + loss; the parts own their
    memories and read / write them inside :meth:`loss`; :meth:`predict` reads the memory reader
    only.

    Checkpoints of the plain classifier heads (``LinearClsHead``'s ``fc.*``,
    ``NormedLinearClsHead``'s ``weight``) load into ``classifier.*`` (a stage-1 checkpoint for
    LWS / tau-norm with ``DecoupledClassifier(reinit_head=False)``).

    Args:
        num_classes (int): number of classes ``C``.
        in_channels (int): feature dimension ``d`` (the classifier's input).
        classifier (dict): classifier head config. Defaults to ``dict(type='LinearClsHead')``.
        memory_term (dict, optional): ``MBJMemoryTerm`` config (``dim``/``num_classes``
            filled in). Defaults to None.
        memory_reader (dict, optional): ``EpisodicMemoryReader`` config (``dim``/
            ``num_classes`` filled in). Defaults to None.
        generator (dict, optional): ``STGFeatureGenerator`` config (``in_channels``/
            ``num_classes`` filled in). Defaults to None.
        logit_adjustment (dict, optional): ``PostHocLogitAdjustment`` config (``tau``;
            ``num_classes`` filled in). Defaults to None.
        init_cfg (dict, optional): Defaults to None (each part initialises itself).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 classifier: dict = dict(type='LinearClsHead'),
                 memory_term: Optional[dict] = None,
                 memory_reader: Optional[dict] = None,
                 generator: Optional[dict] = None,
                 logit_adjustment: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes is None or int(num_classes) < 1:
            raise ValueError(f'ComposedClsHead: num_classes must be >= 1, got {num_classes}.')
        if not isinstance(classifier, dict) or 'type' not in classifier:
            raise TypeError('ComposedClsHead: `classifier` must be a head config with a '
                            f"`type`, e.g. dict(type='LinearClsHead'), got {classifier!r}.")
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.classifier = MODELS.build(self._fill(classifier, 'classifier', 'in_channels'))
        self.memory_term = None
        if memory_term is not None:
            cfg = self._fill(dict(dict(type='MBJMemoryTerm'), **memory_term), 'memory_term',
                             'dim')
            cfg.setdefault('owner', 'ComposedClsHead')
            if cfg.get('variant', 'F') in ('W', 'WF') or cfg.get('num_views', 1) != 1:
                raise ValueError('ComposedClsHead: memory_term supports the feature-memory '
                                 "variants ('F', 'FR', 'FR+RJ') of one view; use MBJClsHead "
                                 "for 'W'/'WF' and RIDEHead(mbj=...) for experts.")
            self.memory_term = MODELS.build(cfg)
        self.memory_reader = None
        if memory_reader is not None:
            self.memory_reader = MODELS.build(self._fill(
                dict(dict(type='EpisodicMemoryReader'), **memory_reader), 'memory_reader',
                'dim'))
        self.generator = None
        if generator is not None:
            cfg = self._fill(dict(dict(type='STGFeatureGenerator'), **generator), 'generator',
                             'in_channels')
            cfg.setdefault('owner', 'ComposedClsHead')
            cfg.setdefault('field', 'model.head.generator')
            if cfg.get('token_source', 'prototype') != 'prototype':
                raise ValueError(
                    "ComposedClsHead: generator.token_source='classifier' needs the stage-1 "
                    'linear classifier carried through the STG stage-2 checkpoint; only '
                    "STGClsHead does that. Use token_source='prototype' here.")
            self.generator = MODELS.build(cfg)
        self.logit_adjustment = None
        if logit_adjustment is not None:
            self.logit_adjustment = MODELS.build(self._fill(
                dict(dict(type='PostHocLogitAdjustment'), **logit_adjustment),
                'logit_adjustment', None))
        self._register_load_state_dict_pre_hook(self._plain_head_keys)

    @property
    def stage_carried_keys(self) -> Tuple[str, ...]:
        """Key prefixes (relative to the head) that a decoupled stage keeps from the previous
        stage's checkpoint while it re-initialises the head: the generator's."""
        return ('generator.', ) if self.generator is not None else ()

    def is_earlier_stage(self, state_dict: dict, prefix: str) -> bool:
        """Whether ``state_dict`` (a decoupled model's) comes from an earlier stage than this
        head: with a generator, a checkpoint without the generator part's own state (STG
        stage 2's ``STGGeneratorHead``) is one, so cRT still re-initialises the classifier."""
        return self.generator is not None and f'{prefix}generator.aug_seed' not in state_dict

    def _fill(self, cfg: dict, field: str, dim_key: Optional[str]) -> dict:
        cfg = copy.deepcopy(cfg)
        pairs = [('num_classes', self.num_classes)]
        if dim_key is not None:
            pairs.append((dim_key, self.in_channels))
        for key, value in pairs:
            if cfg.setdefault(key, value) != value:
                raise ValueError(f'ComposedClsHead: {field}.{key}={cfg[key]} differs from the '
                                 f'head\'s {value}; drop it from `{field}`.')
        return cfg

    def _plain_head_keys(self, state_dict, prefix, *args) -> None:
        """Map a plain classifier head's keys (``fc.weight``) to ``classifier.fc.weight``."""
        for key in self.classifier.state_dict():
            old, new = prefix + key, f'{prefix}classifier.{key}'
            if old in state_dict and new not in state_dict:
                state_dict[new] = state_dict.pop(old)

    # -- forward ------------------------------------------------------------------------------
    def pre_logits(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """The classifier's input: the last feature vector."""
        return self.classifier.pre_logits(feats)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """The classifier's logits ``(N, C)``."""
        return self.classifier(feats)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of features ``x (N, d)`` (the memory term's classifier callable)."""
        return self.classifier((x, ))

    # -- loss ---------------------------------------------------------------------------------
    def loss(self, feats: Sequence[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        """Classifier loss (on the generator's features, if any), plus ``loss_memory`` of the
        memory term; writes the reader."""
        real = None
        if self.generator is not None:
            if 'gt_score' in data_samples[0]:
                raise ValueError('ComposedClsHead: the generator augments by class and needs '
                                 'hard labels; remove Mixup/CutMix from `model.train_cfg`.')
            x = self.pre_logits(feats)
            n = len(data_samples)  # the real samples (AFA: then generated)
            real = x[:n]
            target = torch.cat([ds.gt_label for ds in data_samples]).to(x.device)
            aug = self.generator(real, target)
            if x.shape[0] > n:
                aug = torch.cat([aug, x[n:]])
            losses = self.classifier.loss(tuple(feats[:-1]) + (aug, ), data_samples, **kwargs)
        else:
            losses = self.classifier.loss(feats, data_samples, **kwargs)
        if self.memory_term is None and self.memory_reader is None:
            return losses
        if 'gt_score' in data_samples[0]:
            raise ValueError('ComposedClsHead: the memory parts store (feature, label) pairs '
                             'and need hard labels; remove Mixup/CutMix from '
                             '`model.train_cfg`.')
        # the real samples (AFA: then generated), un-augmented
        x = self.pre_logits(feats)[:len(data_samples)] if real is None else real
        target = torch.cat([ds.gt_label for ds in data_samples]).to(x.device)
        if self.memory_term is not None and self.memory_term.enabled:
            losses['loss_memory'] = self.memory_term(x, target, self.classify)
        if self.memory_reader is not None:
            with torch.no_grad():
                logits = self.classify(x)
            self.memory_reader.write(x, logits, target)
        return losses

    # -- predict ------------------------------------------------------------------------------
    @torch.no_grad()
    def scores(self, feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, bool]:
        """``(scores, are_probabilities)``: the reader's averaged scores, or the logits (both
        from the post-hoc adjusted logits when a ``logit_adjustment`` is attached)."""
        x = self.pre_logits(feats)
        logits = self.classify(x)
        if self.logit_adjustment is not None:
            logits = self.logit_adjustment(logits)
        if self.memory_reader is None:
            return logits, False
        return self.memory_reader.scores(x, logits), True

    def predict(self, feats: Sequence[torch.Tensor],
                data_samples: Optional[List[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """Predictions; with a memory reader its averaged scores, else the classifier's."""
        scores, probabilities = self.scores(feats)
        if not probabilities:
            return self.classifier._get_predictions(scores, data_samples)
        labels = scores.argmax(dim=1, keepdim=True)
        if data_samples is None:
            data_samples = [None] * scores.size(0)
        out = []
        for data_sample, score, label in zip(data_samples, scores, labels):
            data_sample = DataSample() if data_sample is None else data_sample
            out.append(data_sample.set_pred_score(score).set_pred_label(label))
        return out


__all__ = ['ComposedClsHead']
