"""IEM on feature vectors, multi-label (Zhu & Yang, CVPR 2020, Sec. 4.3.2, Table 3)."""
from typing import List, Optional

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample, label_to_onehot

from lt_plugins.models.parts.memory_reader import average_scores, class_values
from .iem_head import IEMHead


@MODELS.register_module()
class IEMVectorHead(IEMHead):
    """IEM for pre-extracted, multi-label feature vectors: linear classifier + global memory.

    YouTube-8M's video-level features are compact vectors with no spatial map, so (paper
    Sec. 4.3.2) there is no local memory and no RSA: the backbone's ``(N, D)`` output is both
    the classifier input and the global memory's key. Against :class:`IEMHead`:

    * outputs are per-class sigmoids and the classification loss is multi-label (default
      ``CrossEntropyLoss(use_sigmoid=True)``: binary cross-entropy summed over classes,
      averaged over samples, as MMPretrain's ``MultiLabelClsHead``); targets are the
      ``gt_score`` of a sample if set, else the multi-hot of its ``gt_label`` list;
    * writes (Eq. 3-4) go to the memory of **every** positive class of a sample:
      ``(key, sigmoid(logits)[c])`` for each positive ``c`` (``warmup_value='logit'``:
      ``logits[c]``);
    * the memory loss (Eq. 14-16) reads every positive pair, ``MSE(Read(M_c), 1)`` averaged
      over the pairs, and the highest-scoring *negative* class ``ybar`` of each sample that has
      one, ``MSE(Read(M_ybar), 0)``;
    * inference averages the classifier's sigmoid with the memory scores:
      ``(w_cls * sigmoid(logits) + w_mem * read) / (w_cls + w_mem)`` (``classifier_weight``
      ``= w_cls``, ``w_mem = 1 - w_cls``), ``read`` per ``inference_read``; ``pred_label``
      lists the classes whose score is ``>= thr``.

    The global memory is an ``EpisodicMemoryReader`` part (``global_reader``), as in
    :class:`IEMHead`; this head adds the multi-label writes, loss and sigmoid average.

    Args:
        num_classes (int): number of classes.
        in_channels (int): feature dimension (the backbone's ``out_channels``).
        global_capacity (int): slots per class. Defaults to 512.
        classifier_weight (float): ``w_cls`` of the inference average. Defaults to 0.5.
        thr (float): score threshold of ``pred_label``. Defaults to 0.5.
        loss (dict): multi-label loss. Defaults to ``CrossEntropyLoss(use_sigmoid=True)``.
        **kwargs: the remaining :class:`IEMHead` options (``num_neighbors``, ``delta``,
            ``gamma``, ``warmup_iters``, ``warmup_value``, ``memory_loss_to_backbone``,
            ``write_after_warmup``, ``memory_loss_weight``, ``normalize_memory_scores``,
            ``inference_read``, ``open_confidence`` ...). The local memory is always off.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 global_capacity: int = 512,
                 classifier_weight: float = 0.5,
                 thr: float = 0.5,
                 loss: dict = dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
                 **kwargs) -> None:
        for key in ('use_local_memory', 'use_global_memory', 'inference_weights',
                    'local_channels', 'local_capacity', 'local_regions', 'region_reduce'):
            if key in kwargs:
                raise ValueError(f'IEMVectorHead: `{key}` does not apply to the vector mode '
                                 '(global memory only, no regions); remove it.')
        if not 0.0 <= classifier_weight <= 1.0:
            raise ValueError(f'IEMVectorHead: classifier_weight={classifier_weight} must be '
                             'in [0, 1].')
        super().__init__(num_classes, in_channels, global_channels=in_channels,
                         use_global_memory=True, use_local_memory=False,
                         global_capacity=global_capacity,
                         inference_weights=dict(classifier=classifier_weight,
                                                global_memory=1.0 - classifier_weight,
                                                local_memory=0.0),
                         loss=loss, **kwargs)
        self.thr = float(thr)

    def _targets(self, data_samples: List[DataSample], device) -> torch.Tensor:
        if 'gt_score' in data_samples[0]:
            target = torch.stack([ds.gt_score.float() for ds in data_samples])
        else:
            target = torch.stack([label_to_onehot(ds.gt_label, self.num_classes)
                                  for ds in data_samples]).float()
        return target.to(device)

    def loss(self, feats, data_samples: List[DataSample], **kwargs) -> dict:
        """Multi-label BCE + memory MSE over positive pairs and hard negatives; stages writes."""
        self.flush_memories()
        gap, _, attended = self._unpack(feats)
        logits = self.fc(attended)
        target = self._targets(data_samples, logits.device)
        losses = {'loss': self.loss_module(logits, target, avg_factor=logits.size(0),
                                           **kwargs)}
        rows, cols = (target > 0).nonzero(as_tuple=True)          # positive (sample, class)
        reader = self.global_reader
        warm = bool(self.num_steps < self.warmup_iters)
        if warm:
            losses['loss_global_memory'] = reader.zero_loss()
        else:
            query = gap if self.memory_loss_to_backbone else gap.detach()
            masked = logits.detach().float().masked_fill(target > 0, float('-inf'))
            has_neg = (target <= 0).any(1)
            neg_rows = has_neg.nonzero(as_tuple=True)[0]
            hard = masked.argmax(1)[neg_rows]                       # ybar per sample
            losses['loss_global_memory'] = self.memory_loss_weight * reader.regression_loss(
                query[rows], cols, query[neg_rows], hard)
        if warm or self.write_after_warmup:
            with torch.no_grad():
                scores = class_values(logits, self.warmup_value, activation='sigmoid')
            reader.store(gap.detach()[rows], scores[rows, cols], cols, apply=False)
        self.num_steps += 1
        return losses

    @torch.no_grad()
    def memory_scores(self, feats) -> torch.Tensor:
        """``(B, C)``: weighted average of the classifier's sigmoid and the memory read."""
        gap, _, attended = self._unpack(feats)
        weights = self.inference_weights
        reads = ([(weights['global_memory'],
                   self.global_reader.read(gap, self.inference_read,
                                           self.normalize_memory_scores))]
                 if weights['global_memory'] else [])
        return average_scores(torch.sigmoid(self.fc(attended).float()), weights['classifier'],
                              reads, weights['classifier'] + weights['global_memory'])

    def predict(self, feats, data_samples: Optional[List[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """Multi-label predictions: ``pred_score`` (B, C), ``pred_label`` = scores >= thr."""
        scores = self.memory_scores(feats)
        confidence = self.open_set_confidence(feats, scores)
        if data_samples is None:
            data_samples = [None] * scores.size(0)
        out = []
        for i, (data_sample, score) in enumerate(zip(data_samples, scores)):
            data_sample = DataSample() if data_sample is None else data_sample
            data_sample.set_pred_score(score)
            data_sample.set_pred_label(torch.nonzero(score >= self.thr).view(-1))
            if confidence is not None:
                data_sample.set_field(confidence[i], 'open_confidence')
            out.append(data_sample)
        return out


__all__ = ['IEMVectorHead']
