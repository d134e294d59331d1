"""STG stage 2: train the Semantic Transformation Generator on head classes (Sec. 3.3)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine import dist
from mmengine.dist import get_rank
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from lt_plugins.memory.rebalanced_fifo import RebalancedFIFOMemory, gather_in_rank_order
from lt_plugins.models.losses.global_mean import check_normalize_over
from lt_plugins.models.stg import (REGRESSION_LOSSES, SampleStatSmoother, check_threshold,
                                   drop_expected_missing, head_tail_split, regression_loss,
                                   transformation_statistics)


def stage_tag_of(state_dict: dict, prefix: str) -> int:
    """STG stage that wrote a head's checkpoint (1 for a plain classifier head)."""
    tag = state_dict.get(prefix + 'stg_stage')
    return 1 if tag is None else int(tag)


@MODELS.register_module()
class STGGeneratorHead(LinearClsHead):
    """Stage-2 head of STG: the frozen stage-1 classifier plus the generator being trained.

    On a batch of frozen-backbone features it keeps the head-class samples (``N_c >
    head_threshold``), computes their ground-truth transformation statistics from the same-class
    features of the batch and of a FIFO feature dictionary (Eq. 1,
    :func:`~lt_plugins.models.stg.transformation_statistics`), smooths them per sample over time
    (keyed by ``data_sample.sample_idx``), regresses the generator's prediction
    ``s(a_i + p_{y_i})`` (Eq. 2) onto them, and then pushes the batch into the dictionary.
    Tail samples are ignored. The dictionary is the package's :class:`RebalancedFIFOMemory`
    with ``beta = 0`` (every head feature admitted, oldest dropped).

    Under DDP the statistics of Eq. 1 are computed on the global batch (features, labels and
    sample indices all-gathered in rank order), so ``mu``, ``Sigma``, the set sizes and the
    smoothed targets equal those of one process fed the concatenated batch; each rank then
    regresses its own samples' targets, and the mean over valid samples divides by the count
    of the global batch (``normalize_over='global'``; times the world size, as DDP averages
    gradients), so the loss is that of the concatenated batch (the generator's BatchNorm
    still normalises per rank unless converted to SyncBN).

    The classifier ``fc`` is the stage-1 one, frozen: ``predict`` (validation during stage 2)
    reports the stage-1 accuracy, and the checkpoint carries it on to stage 3 (LWS keeps it).

    Args:
        num_classes (int): number of classes ``C``.
        in_channels (int): feature dimension ``d``.
        generator (dict): config of :class:`SemanticTransformationGenerator`; ``in_channels``
            and ``num_classes`` are filled in.
        dictionary_size (int): feature dictionary size ``m`` (paper: 0 / 600 / 1200, best
            1200). 0 uses the mini-batch only.
        head_threshold (int | str): a class is *head* when it has more than this many
            training images; ``'median'`` (tail = the classes at or below the median count)
            or ``'q<p>'`` (a quantile). Defaults to 100 (the many-shot split).
        include_self (bool): whether ``a_i`` is in its own set in Eq. 1. Defaults to False.
        min_set_size (int): samples whose set has fewer members get no loss (with
            ``include_self=True`` a lone sample has ``k = 1``, ``mu = Sigma = 0``). Defaults
            to 2.
        smooth_momentum (float): per-sample EMA momentum of the targets; 0 disables.
            Defaults to 0.9.
        smooth_persistent (bool): keep the smoothing state in checkpoints. Defaults to True.
        loss_type (str): ``'mse'`` (default), ``'smooth_l1'`` or ``'gaussian_nll'``.
        loss_mu_weight (float), loss_sigma_weight (float): weights of the two terms.
        class_counts (Sequence[int], optional): training counts; overrides ClassCountsHook.
        dictionary_seed (int): seed of the dictionary's admission draws (irrelevant at
            ``beta = 0``, kept for the bank's API).
        normalize_over (str): ``'global'`` (the mean over valid samples of all ranks) or
            ``'rank'`` (of each rank's). Defaults to ``'global'``.
        **kwargs: ``LinearClsHead`` arguments (``loss``, ``topk``, ``init_cfg``).
    """

    STAGE = 2

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 generator: dict = dict(type='SemanticTransformationGenerator'),
                 dictionary_size: int = 1200,
                 head_threshold: Union[int, str] = 100,
                 include_self: bool = False,
                 min_set_size: int = 2,
                 smooth_momentum: float = 0.9,
                 smooth_persistent: bool = True,
                 loss_type: str = 'mse',
                 loss_mu_weight: float = 1.0,
                 loss_sigma_weight: float = 1.0,
                 class_counts: Optional[Sequence[int]] = None,
                 dictionary_seed: int = 0,
                 normalize_over: str = 'global',
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, **kwargs)
        self.normalize_over = check_normalize_over(normalize_over, 'STGGeneratorHead')
        if loss_type not in REGRESSION_LOSSES:
            raise ValueError(f'STGGeneratorHead loss_type={loss_type!r}: choose one of '
                             f'{REGRESSION_LOSSES} (`model.head.loss_type`).')
        if int(dictionary_size) < 0:
            raise ValueError(f'`model.head.dictionary_size` must be >= 0, got '
                             f'{dictionary_size}.')
        if int(min_set_size) < 1:
            raise ValueError(f'`model.head.min_set_size` must be >= 1, got {min_set_size}.')
        self.fc.requires_grad_(False)
        gen_cfg = dict(generator)
        gen_cfg.setdefault('in_channels', in_channels)
        gen_cfg.setdefault('num_classes', num_classes)
        self.generator = MODELS.build(gen_cfg)
        self.dictionary_size = int(dictionary_size)
        self.dictionary = (RebalancedFIFOMemory(self.dictionary_size, in_channels, num_classes,
                                                beta=0.0, seed=dictionary_seed)
                           if self.dictionary_size > 0 else None)
        self.smoother = SampleStatSmoother(in_channels, smooth_momentum, smooth_persistent)
        self.head_threshold = check_threshold(head_threshold)
        self.include_self = bool(include_self)
        self.min_set_size = int(min_set_size)
        self.loss_type = loss_type
        self.loss_mu_weight = float(loss_mu_weight)
        self.loss_sigma_weight = float(loss_sigma_weight)
        self.register_buffer('class_counts', torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer('stg_stage', torch.tensor(self.STAGE))
        self._explicit_counts = class_counts is not None
        if class_counts is not None:
            self._write_counts(class_counts)
        self._expected_missing = set()
        self.register_load_state_dict_post_hook(drop_expected_missing)

    # -- class counts ---------------------------------------------------------------------
    def _write_counts(self, counts) -> None:
        counts = torch.as_tensor(counts, dtype=torch.long).reshape(-1)
        if counts.numel() != self.num_classes:
            raise ValueError(f'{type(self).__name__}: num_classes={self.num_classes} but the '
                             f'class counts have {counts.numel()} entries: fix '
                             '`model.head.num_classes` or `class_counts`.')
        head_tail_split(counts, self.head_threshold)  # fail early on a degenerate split
        self.class_counts.copy_(counts.to(self.class_counts.device))

    def set_class_counts(self, counts) -> None:
        """Receive ``N_c`` from ``ClassCountsHook`` (an explicit ``class_counts`` wins)."""
        if not self._explicit_counts:
            self._write_counts(counts)

    def head_mask(self) -> torch.Tensor:
        """``(C,)`` bool mask of the head classes."""
        return head_tail_split(self.class_counts, self.head_threshold)

    # -- checkpoints ----------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        source = stage_tag_of(state_dict, prefix)
        state_dict.pop(prefix + 'stg_stage', None)
        # a stage-1 checkpoint has neither the stage tag nor the counts (ClassCountsHook)
        # the stage tag is a constant of the class, never loaded; a stage-1 checkpoint
        # has no counts either (ClassCountsHook)
        self._expected_missing = ({prefix + 'stg_stage', prefix + 'class_counts'}
                                  if source < self.STAGE else {prefix + 'stg_stage'})
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    # -- training -------------------------------------------------------------------------
    def generator_loss(self, feats: torch.Tensor, labels: torch.Tensor,
                       sample_idx: torch.Tensor) -> dict:
        """Eq. 1-2 regression loss of one batch and the dictionary / prototype updates.

        Args:
            feats (Tensor): ``(B, d)`` frozen-backbone features.
            labels (Tensor): ``(B,)``.
            sample_idx (Tensor): ``(B,)`` dataset indices (for the temporal smoothing).
        """
        feats = feats.detach()
        head = self.head_mask()[labels]
        a, y, idx = feats[head], labels[head], sample_idx[head]
        if self.dictionary is not None:
            bank_feats, bank_labels = self.dictionary.get()
        else:
            bank_feats = bank_labels = None
        # Eq. 1's sets come from the global batch (all ranks, rank order), so the statistics
        # do not depend on how the batch is split across ranks; this rank keeps its own rows.
        rank = get_rank()
        g_a, g_y, g_idx, g_rank = gather_in_rank_order(a, y, idx, torch.full_like(y, rank))
        gt_mu, gt_sigma, k = transformation_statistics(g_a, g_y, bank_feats, bank_labels,
                                                       self.include_self)
        valid = k >= self.min_set_size
        gt_mu, gt_sigma = self.smoother(g_idx, gt_mu, gt_sigma, valid, gather=False)
        mine = g_rank == rank
        world = dist.get_world_size()
        if self.normalize_over == 'global' and world > 1:
            # samples in a loss: valid ones of ranks with >= 2 head rows (see below)
            in_loss = valid & (torch.bincount(g_rank, minlength=world) >= 2)[g_rank]
            global_share = in_loss.sum().to(torch.float32).clamp_min(1.0) / world
        else:
            global_share = None
        gt_mu, gt_sigma, valid = gt_mu[mine], gt_sigma[mine], valid[mine]
        if a.shape[0] >= 2:
            pred_mu, pred_sigma = self.generator(a, y)
            # the regression runs in float32 (squared statistics overflow fp16 under AMP)
            l_mu, l_sigma = regression_loss(pred_mu.float(), pred_sigma.float(), gt_mu.float(),
                                            gt_sigma.float(), self.loss_type)
            w = valid.to(l_mu.dtype)
            n = w.sum().clamp_min(1.0) if global_share is None else global_share
            loss_mu = (l_mu * w).sum() / n
            loss_sigma = (l_sigma * w).sum() / n
        else:  # BN cannot normalise < 2 samples: a zero loss that still touches every param
            zero = sum(p.sum() for p in self.generator.parameters()) * 0.0
            loss_mu = loss_sigma = zero
            valid = torch.zeros_like(valid)
        if self.training:
            if self.dictionary is not None:
                self.dictionary.enqueue(a, y)
            self.generator.update_prototypes(a, y)
            self.generator.trained_iters += 1
        return dict(loss_mu=loss_mu * self.loss_mu_weight,
                    loss_sigma=loss_sigma * self.loss_sigma_weight,
                    stg_valid=valid.float().sum() / max(labels.numel(), 1))

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        """Stage-2 loss: the generator regression only (``fc`` is frozen)."""
        if 'gt_score' in data_samples[0]:
            raise ValueError('STGGeneratorHead: stage 2 needs un-mixed features and hard '
                             'labels; remove the batch augments (Mixup/CutMix) inherited from '
                             'stage 1 (`model.train_cfg=None`).')
        labels = torch.cat([ds.gt_label for ds in data_samples]).to(feats[-1].device)
        if self.smoother.momentum == 0:
            idx = torch.zeros_like(labels)
        elif any('sample_idx' not in ds for ds in data_samples):
            raise KeyError('STGGeneratorHead needs `data_sample.sample_idx` for the temporal '
                           'smoothing: pack inputs with `PackInputs` (it adds sample_idx) or '
                           'set `model.head.smooth_momentum=0`.')
        else:
            idx = torch.as_tensor([int(ds.sample_idx) for ds in data_samples],
                                  device=labels.device)
        return self.generator_loss(self.pre_logits(feats), labels, idx)
