"""Linear classification head for AFA: ``L_ori`` on enhanced real features + ``L_all``."""
from typing import List, Optional, Tuple

import torch
from mmpretrain.evaluation.metrics import Accuracy
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class AFAClsHead(LinearClsHead):
    """Linear head computing the two AFA losses of the Lay-Back Learning Schedule (Eq. 12).

    The neck (:class:`~lt_plugins.models.necks.AFANeck`) hands the head the pooled features
    of the ``B`` enhanced real samples followed by those of the ``G`` generated samples,
    and their labels as ``gen_labels``. The head returns

    - ``loss_ori`` = CE on the ``B`` real (enhanced) features (``L_ori``);
    - ``loss_all`` = ``lambda_t * CE`` on all ``B + G`` features (``lambda_t * L_all``),

    so the total is ``L_ori + lambda_t * L_all`` (Eq. 12). ``lambda_t`` starts at
    ``all_loss_weight`` (training without LBLS, the "w/o LBLS" ablation) and is switched
    by :class:`~lt_plugins.engine.hooks.LBLSHook` through :meth:`set_lbls_weight`
    (``0`` before epoch ``t``, ``lambda`` from then on); it is logged as ``lbls_weight``.
    With no generated features ``L_all`` is CE over the real features only. Training
    accuracy (``cal_acc``) is measured on the real features. Inference is
    ``LinearClsHead``'s.

    Args:
        num_classes (int): number of classes.
        in_channels (int): input feature channels.
        all_loss_weight (float): ``lambda`` of Eq. 12 used until a hook sets it; >= 0.
            Defaults to 2.0.
        loss (dict): classification loss config. Defaults to
            ``dict(type='CrossEntropyLoss', loss_weight=1.0)``.
        **kwargs: other ``LinearClsHead`` arguments (``topk``, ``cal_acc``, ``init_cfg``).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 all_loss_weight: float = 2.0,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, loss=loss,
                         **kwargs)
        if all_loss_weight < 0:
            raise ValueError(
                f'AFAClsHead: all_loss_weight (lambda of Eq. 12) must be >= 0, got '
                f'{all_loss_weight}.')
        self.all_loss_weight = float(all_loss_weight)
        self.lbls_weight = float(all_loss_weight)

    def set_lbls_weight(self, weight: float) -> None:
        """Set ``lambda_t``, the current weight of ``L_all`` (called by ``LBLSHook``)."""
        self.lbls_weight = float(weight)

    def loss(self,
             feats: Tuple[torch.Tensor],
             data_samples: List[DataSample],
             gen_labels: Optional[torch.Tensor] = None,
             **kwargs) -> dict:
        """``dict(loss_ori, loss_all, lbls_weight[, accuracy_top-k])`` for real + generated."""
        if 'gt_score' in data_samples[0]:
            raise ValueError(
                'AFAClsHead needs hard labels (gt_label): generated features take the label '
                'of their class-related part; remove batch augmentations that produce soft '
                'labels (Mixup/CutMix in model.train_cfg.augments).')
        cls_score = self(feats)
        target = torch.cat([ds.gt_label for ds in data_samples]).to(cls_score.device)
        num_real = target.numel()
        all_target = target if gen_labels is None else torch.cat(
            [target, gen_labels.to(target)])
        if all_target.numel() != cls_score.size(0):
            raise ValueError(
                f'AFAClsHead: got {cls_score.size(0)} features for {num_real} real samples '
                f'and {all_target.numel() - num_real} generated labels; the neck must return '
                'real features first, then one feature per generated label.')

        losses = dict()
        losses['loss_ori'] = self.loss_module(
            cls_score[:num_real], target, avg_factor=num_real, **kwargs)
        if self.lbls_weight > 0:
            loss_all = self.loss_module(
                cls_score, all_target, avg_factor=all_target.numel(), **kwargs)
            losses['loss_all'] = self.lbls_weight * loss_all
        else:  # keep the logged keys stable across the LBLS switch
            losses['loss_all'] = cls_score.new_zeros((), dtype=torch.float32)
        # float32 even when the scores are bfloat16 under autocast (0.3 is 0.30078 there)
        losses['lbls_weight'] = cls_score.new_tensor(self.lbls_weight, dtype=torch.float32)
        if self.cal_acc:
            acc = Accuracy.calculate(cls_score[:num_real].detach(), target, topk=self.topk)
            losses.update({f'accuracy_top-{k}': a for k, a in zip(self.topk, acc)})
        return losses
