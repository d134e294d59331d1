"""Attentive Feature Augmentation (AFA) neck: class-aware feature decomposition + generation."""
import math
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm
from mmpretrain.registry import MODELS

from lt_plugins.memory.rebalanced_fifo import rank_generator

MASK_AXES = ('channel', 'spatial')
MASK_TYPES = ('softmax', 'sigmoid', 'softmax_times_n')
VAR_SOURCES = ('value', 'input')
GEN_BN_MODES = ('shared', 'frozen_stats')
QKV_MODES = ('linear', 'conv1x1')
PLACEMENTS = ('before_last_stage', 'after_last_stage')


def generation_counts(labels: torch.Tensor, alpha: float,
                      gamma: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Self-adapted generation counts of AFA, Eq. 9-10, for one mini-batch.

    ``f_c`` is the in-batch frequency of each class present in ``labels``;
    ``R_c = f_c^-alpha / sum_c' f_c'^-alpha`` (Eq. 9, computed as a softmax of
    ``-alpha * log f_c`` for stability) and ``G_c = ceil(gamma * R_c * B)`` (Eq. 10).

    Returns:
        tuple: ``classes`` (K,) present class ids (sorted), ``counts`` (K,) their number of
        samples in the batch, ``num_gen`` (K,) the number ``G_c`` of features to generate.
    """
    classes, counts = torch.unique(labels, sorted=True, return_counts=True)
    batch = labels.numel()
    freq = counts.double() / batch
    ratio = torch.softmax(-alpha * torch.log(freq), dim=0)  # Eq. 9
    # Eq. 10; the tiny offset keeps an exact integer (e.g. gamma * R_c * B = 64) from being
    # rounded up by float error, without changing any non-integer case that matters.
    num_gen = torch.ceil(gamma * ratio * batch - 1e-9).clamp_min(0).long()
    return classes, counts, num_gen


def sample_pairs(labels: torch.Tensor, classes: torch.Tensor, counts: torch.Tensor,
                 num_gen: torch.Tensor,
                 generator: Optional[torch.Generator] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw the (i, j) pairs of Eq. 11 for every generated feature, without Python loops.

    For a generated feature of class ``c``, ``i`` is uniform over the batch samples of
    class ``c`` and ``j`` is uniform over the other ``B - 1`` samples (``j != i``, any
    class). Needs ``B >= 2``.

    Returns:
        tuple: ``idx_class`` (G,), ``idx_var`` (G,) and the generated labels ``gen_labels``
        (G,), grouped by class in the order of ``classes``.
    """
    device = labels.device
    batch = labels.numel()
    gen_labels = torch.repeat_interleave(classes, num_gen)
    slot = torch.repeat_interleave(torch.arange(classes.numel(), device=device), num_gen)
    # samples sorted by class: class k occupies order[start[k] : start[k] + counts[k]]
    order = torch.argsort(labels, stable=True)
    start = torch.cumsum(counts, 0) - counts
    u = torch.rand(gen_labels.numel(), device=device, generator=generator, dtype=torch.float64)
    offset = (u * counts[slot]).long().clamp_max(counts[slot] - 1)
    idx_class = order[start[slot] + offset]
    # j uniform over {0..B-1} \ {i}: draw from B - 1 values and skip i
    idx_var = torch.randint(0, batch - 1, (gen_labels.numel(), ), device=device,
                            generator=generator)
    idx_var = idx_var + (idx_var >= idx_class).long()
    return idx_class, idx_var, gen_labels


class frozen_bn_stats:
    """Context manager: the BatchNorm layers of ``tail`` (an ``nn.Module`` or a bound
    method of one, e.g. ``backbone.forward_tail``) keep normalising with batch statistics in
    training mode but leave ``running_mean`` / ``running_var`` unchanged (momentum 0; the
    batch counter is restored too)."""

    def __init__(self, tail) -> None:
        owner = tail if isinstance(tail, nn.Module) else getattr(tail, '__self__', None)
        if not isinstance(owner, nn.Module):
            raise TypeError("AFANeck(gen_bn='frozen_stats') needs `tail` to be an nn.Module "
                            f'or a bound method of one, got {type(tail).__name__}.')
        self.bns = [m for m in owner.modules() if isinstance(m, _BatchNorm)]

    def __enter__(self) -> None:
        self.saved = [(m.momentum, None if m.num_batches_tracked is None else
                       m.num_batches_tracked.clone()) for m in self.bns]
        for m in self.bns:
            m.momentum = 0.0

    def __exit__(self, *exc) -> None:
        for m, (momentum, tracked) in zip(self.bns, self.saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


class _SELayer(nn.Module):
    """Squeeze-and-excitation channel re-weighting ``F_se`` (Eq. 2): ``x * gate(x)``."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel weights ``(B, D, 1, 1)`` in (0, 1)."""
        s = x.mean((2, 3), keepdim=True)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(s), inplace=True)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


@MODELS.register_module()
class AFANeck(BaseModule):
    """Attentive Feature Augmentation neck (Wang et al., AFA + LBLS), with pooling.

    Takes the feature map ``X`` (B, D, H, W) of the backbone trunk and computes, per sample,
    with the spatial map flattened to ``(B, D, HW)`` (each channel a "token"):

    - Eq. 1: ``X_att = softmax(Q K^T / sqrt(HW)) V`` (attention among channels), with
      ``Q, K, V`` linear maps over the HW axis (``qkv='linear'``, Algorithm 1; fixes the
      input size to ``feat_size``) or 1x1 convolutions over channels (``qkv='conv1x1'``,
      any size);
    - Eq. 2: ``X~ = SE(X_att)``;  Eq. 3: ``M = softmax(X~ + X_att)`` along ``mask_axis``
      (``'channel'``: for every position the mask sums to 1 over the D channels, "the
      specific combination of feature patterns"; ``'spatial'``: sums to 1 over HW for
      every channel);
    - Eq. 4-6: ``X_class = M * V``, ``X_var = V - X_class``, ``X_enh = X + X_class``
      (``X_enh = X`` when ``attention_addition=False``, the "w/o AttAdd" ablation).

    Readings the paper leaves open (defaults are the equations): ``mask='sigmoid'``
    (``M = sigmoid(X~ + X_att)`` per element, so a mask entry does not shrink as ``1/D``)
    or ``'softmax_times_n'`` (Eq. 3's softmax times the size ``n`` of its axis: ``D`` for
    ``'channel'``, ``HW`` for ``'spatial'``; mean 1 instead of ``1/n``);
    ``var_source='input'`` takes the text's ``X_var = X - X_class`` instead of Eq. 5's
    ``V - X_class``; ``gen_bn='frozen_stats'`` runs the generated features through the
    tail in a second pass whose BatchNorm layers normalise with batch statistics but do not
    update their running statistics (momentum 0), so the statistics used at test time and by
    cRT come from real features only (``'shared'``: one pass over real + generated).

    In training, when labels are given and generation is on, self-adapted generation
    (Eq. 9-11) adds ``G_c = ceil(gamma * R_c * B)`` features ``X_class[i] + X_var[j]``
    (``i`` of class ``c``, ``j != i``) per class ``c`` present in the batch, where ``R_c``
    comes from the in-batch class frequencies and ``alpha``; a batch of one sample
    generates nothing. Real (enhanced) and generated features then go through ``tail`` (the
    backbone's last stage, when ``placement='before_last_stage'``) and global average
    pooling. At inference only ``X_enh`` is used.

    Statistics are per process: under DDP each rank generates from its own batch (like
    BatchNorm without sync); no statistic has to be global because ``R_c`` is defined on
    "a mini-batch" and every generated feature pairs two samples of the same rank.

    Call protocol (see :class:`~lt_plugins.models.classifiers.LabelAwareClassifier`):
    ``forward(inputs, data_samples=None, tail=None)`` returns ``(pooled,)`` without labels
    and ``((pooled,), extras)`` with labels, where ``pooled`` is ``(B + G, C_out)`` and
    ``extras = dict(gen_labels=(G,) tensor, log_vars=dict(...))``. ``gen_labels`` is only
    present when features were generated. Logged: ``afa_num_gen`` = G and, whenever the
    decomposition runs in training, ``afa_class_ratio`` = ``||X_class|| / ||V||`` over the
    batch (a uniform mask gives ``1/D`` with ``mask_axis='channel'``, ``1/HW`` with
    ``'spatial'``; growing values show the mask singling out class-related patterns).

    Args:
        in_channels (int): channels ``D`` of the input feature map.
        feat_size (Sequence[int], optional): ``(H, W)`` of the input map; ``qkv='linear'``
            needs it or ``input_size`` (e.g. ``(16, 16)`` after ResNet-32's second stage on
            32x32 images, ``(14, 14)`` after ResNeXt-50's third stage on 224x224).
        qkv (str): ``'linear'`` (maps over HW, Algorithm 1) or ``'conv1x1'``.
            Defaults to ``'linear'``.
        mask_axis (str): softmax axis of the mask, ``'channel'`` or ``'spatial'``.
            Defaults to ``'channel'``.
        mask (str): ``'softmax'`` (Eq. 3), ``'sigmoid'`` (element-wise; ``mask_axis`` is
            then unused) or ``'softmax_times_n'``. Defaults to ``'softmax'``.
        var_source (str): ``'value'`` (Eq. 5: ``X_var = V - X_class``) or ``'input'``
            (the text: ``X_var = X - X_class``). Defaults to ``'value'``.
        gen_bn (str): ``'shared'`` (one tail pass over real + generated features) or
            ``'frozen_stats'`` (separate passes; the generated one leaves the tail's
            BatchNorm running statistics alone). Defaults to ``'shared'``.
        se_reduction (int): SE bottleneck reduction. Defaults to 16.
        alpha (float): imbalance control factor of Eq. 9, ``>= 0``. Defaults to 4.
        gamma (float): ratio of generated to real features, Eq. 10, ``>= 0``.
            Defaults to 1.
        generate (bool): enable feature generation (False: the "w/o Gen" ablation).
            ``LBLSHook`` additionally switches generation off while the L_all weight is 0.
            Defaults to True.
        attention_addition (bool): ``X_enh = X + X_class`` (True) or ``X`` (False).
            Defaults to True.
        placement (str): ``'before_last_stage'`` (the paper: the classifier gives the
            neck the backbone's last stage as ``tail``) or ``'after_last_stage'``.
            Defaults to ``'before_last_stage'``.
        input_size (Sequence[int], optional): ``(H, W)`` of the training images, for
            ``qkv='linear'`` without ``feat_size``: the classifier (``LabelAwareClassifier``
            and every classifier of this package) builds the backbone first and turns it
            into ``feat_size`` by one dry forward of the trunk, so that switching the timm
            ``model_name`` needs no other edit. Why at build time and not lazily from the
            first batch (as ``torch.nn.LazyLinear``): mmengine's Runner wraps the model in
            DDP and runs ``init_weights`` (which reads every parameter's shape) before the
            first batch, and builds the optimizer from the parameters; all three need real
            parameters, and a checkpoint then loads into the usual ``neck.qkv.*`` keys of
            the usual shapes. The image size is the one thing the model cannot know, so the
            config states it once. Ignored when ``feat_size`` is given. Defaults to None.
        seed (int, optional): key of the pair draws of Eq. 11. Each training batch draws
            from its own generator keyed by ``(seed, step, rank)``, where ``step`` counts
            the generating batches; ``seed`` and ``step`` are buffers (``pair_seed``,
            ``pair_step``), so a resumed run draws exactly the pairs of an uninterrupted
            one and the global torch RNG is left alone. ``None`` takes
            ``torch.initial_seed()`` at construction (the runner's ``randomness.seed``,
            the same on every rank). Defaults to None.
        init_cfg (dict, optional): mmengine init config. Defaults to None.
    """

    requires_labels = True

    def __init__(self,
                 in_channels: int,
                 feat_size: Optional[Sequence[int]] = None,
                 qkv: str = 'linear',
                 mask_axis: str = 'channel',
                 mask: str = 'softmax',
                 var_source: str = 'value',
                 gen_bn: str = 'shared',
                 se_reduction: int = 16,
                 alpha: float = 4.0,
                 gamma: float = 1.0,
                 generate: bool = True,
                 attention_addition: bool = True,
                 placement: str = 'before_last_stage',
                 input_size: Optional[Sequence[int]] = None,
                 seed: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if alpha < 0:
            raise ValueError(f'AFANeck: alpha must be >= 0 (got {alpha}); alpha = 0 generates '
                             'equally for every class in the batch, the paper uses 4.')
        if gamma < 0:
            raise ValueError(f'AFANeck: gamma must be >= 0 (got {gamma}); it is the ratio of '
                             'generated to real features (paper: 1).')
        if qkv not in QKV_MODES:
            raise ValueError(f'AFANeck: qkv must be one of {QKV_MODES} (got {qkv!r}).')
        if mask_axis not in MASK_AXES:
            raise ValueError(f'AFANeck: mask_axis must be one of {MASK_AXES} (got {mask_axis!r}).')
        for name, value, choices in (('mask', mask, MASK_TYPES),
                                     ('var_source', var_source, VAR_SOURCES),
                                     ('gen_bn', gen_bn, GEN_BN_MODES)):
            if value not in choices:
                raise ValueError(f'AFANeck: {name} must be one of {choices} (got {value!r}); '
                                 f'set model.neck.{name}.')
        if gen_bn != 'shared' and placement != 'before_last_stage':
            raise ValueError("AFANeck: gen_bn='frozen_stats' acts on the backbone's last "
                             "stage; it needs placement='before_last_stage'.")
        if placement not in PLACEMENTS:
            raise ValueError(f'AFANeck: placement must be one of {PLACEMENTS} (got {placement!r}).')
        self.in_channels = in_channels
        self.qkv_mode = qkv
        self.mask_axis = mask_axis
        self.mask_type = mask
        self.var_source = var_source
        self.gen_bn = gen_bn
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.generate = generate
        self.attention_addition = attention_addition
        self.placement = placement
        self.requires_tail = placement == 'before_last_stage'
        # set by LBLSHook through set_lbls_weight(); generation is pointless while L_all is off
        self._lbls_active = True
        seed = torch.initial_seed() if seed is None else int(seed)
        self.register_buffer('pair_seed', torch.tensor(seed & (2**63 - 1), dtype=torch.long))
        self.register_buffer('pair_step', torch.zeros((), dtype=torch.long))

        self.input_size = None if input_size is None else tuple(int(s) for s in input_size)
        if qkv == 'linear':
            if feat_size is None and input_size is not None:
                raise ValueError(
                    f'AFANeck(input_size={self.input_size}) without feat_size: the input size '
                    'is turned into feat_size by the classifier, which dry-runs the backbone; '
                    "build the neck inside model=dict(type='LabelAwareClassifier', "
                    'backbone=..., neck=...) or give feat_size=(H, W) of its input map.')
            if feat_size is None:
                raise ValueError(
                    "AFANeck(qkv='linear') maps over the flattened H*W axis and needs "
                    '`feat_size=(H, W)` of its input map (e.g. (16, 16) after the second '
                    "stage of resnet32_cifar on 32x32 images), or `input_size=(H, W)` of the "
                    "training images (the classifier derives feat_size from the backbone); "
                    "or use qkv='conv1x1'.")
            self.feat_size = (int(feat_size[0]), int(feat_size[1]))
            hw = self.feat_size[0] * self.feat_size[1]
            self.qkv = nn.Linear(hw, 3 * hw)
        else:
            self.feat_size = None if feat_size is None else tuple(int(s) for s in feat_size)
            self.qkv = nn.Conv2d(in_channels, 3 * in_channels, 1)
        self.se = _SELayer(in_channels, se_reduction)

    # -- LBLS protocol -----------------------------------------------------------------------
    def set_lbls_weight(self, weight: float) -> None:
        """LBLS (Eq. 12): generate only while the weight of ``L_all`` is positive."""
        self._lbls_active = weight > 0

    @property
    def generating(self) -> bool:
        return self.training and self.generate and self.gamma > 0 and self._lbls_active

    # -- Eq. 1-6 -----------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        b, d, h, w = x.shape
        if d != self.in_channels:
            raise ValueError(f'AFANeck: got {d} input channels, built for in_channels='
                             f'{self.in_channels}; set model.neck.in_channels={d}.')
        if self.qkv_mode == 'linear' and (h, w) != self.feat_size:
            raise ValueError(
                f"AFANeck(qkv='linear') was built for {self.feat_size[0]}x"
                f'{self.feat_size[1]} input maps (feat_size) but got {h}x{w}: set '
                f'model.neck.feat_size=({h}, {w}) for this input resolution, or '
                "qkv='conv1x1' to accept any size.")

    def mask_and_value(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Eq. 1-3: the decomposition mask ``M`` and the values ``V``, both (B, D, H, W).

        With ``qkv='linear'`` the attention logits are computed as ``(X A^T + c) X^T`` with
        ``A = W_K^T W_Q`` and ``c = W_K^T b_Q``: this equals ``Q K^T`` up to terms that are
        constant along the key axis (``x_i^T W_Q^T b_K + b_Q^T b_K``), which the softmax of
        Eq. 1 removes exactly, and saves one of the three (B*D, HW) x (HW, HW) products.
        """
        self._check_input(x)
        b, d, h, w = x.shape
        hw = h * w
        if self.qkv_mode == 'linear':
            xf = x.flatten(2)
            w_q, w_k, w_v = self.qkv.weight.chunk(3, dim=0)
            b_q, _, b_v = self.qkv.bias.chunk(3, dim=0)
            query = F.linear(xf, w_k.t() @ w_q, w_k.t() @ b_q)  # rows of Q W_K, see above
            logits = query @ xf.transpose(1, 2)
            v = F.linear(xf, w_v, b_v)
        else:
            q, k, v = self.qkv(x).flatten(2).chunk(3, dim=1)
            logits = q @ k.transpose(1, 2)
        attn = torch.softmax(logits / math.sqrt(hw), dim=-1)  # (B, D, D)
        x_att = (attn @ v).view(b, d, h, w)  # Eq. 1
        dim = 1 if self.mask_axis == 'channel' else 2
        gate = 1 + self.se.gate(x_att)
        if self.mask_type == 'sigmoid':
            mask = torch.sigmoid(x_att * gate)
            return mask, v.reshape(b, d, h, w)
        if torch.is_grad_enabled():
            logits = x_att * gate  # Eq. 2-3: SE(X_att) + X_att
            mask = torch.softmax(logits.flatten(2), dim=dim)
        else:  # inference: the same arithmetic in place (no fresh buffers to fault in)
            logits = x_att.mul_(gate).flatten(2)
            mask = logits.sub_(logits.amax(dim, keepdim=True)).exp_()
            mask = mask.div_(mask.sum(dim, keepdim=True))
        if self.mask_type == 'softmax_times_n':
            mask = mask * (d if dim == 1 else hw)
        return mask.view(b, d, h, w), v.reshape(b, d, h, w)

    def decompose(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Eq. 1-6 on ``x`` (B, D, H, W); returns maps ``v, mask, x_class, x_var, x_enh``."""
        mask, v = self.mask_and_value(x)
        x_class = mask * v  # Eq. 4
        x_var = (v if self.var_source == 'value' else x) - x_class  # Eq. 5 (or the text)
        x_enh = x + x_class if self.attention_addition else x  # Eq. 6
        return dict(v=v, mask=mask, x_class=x_class, x_var=x_var, x_enh=x_enh)

    def enhance(self, x: torch.Tensor) -> torch.Tensor:
        """Inference path: only ``X_enh = X + M * V`` (Eq. 4 and 6), fused."""
        if not self.attention_addition:
            return x
        mask, v = self.mask_and_value(x)
        if torch.is_grad_enabled():
            return torch.addcmul(x, mask, v)
        return mask.mul_(v).add_(x)

    # -- Eq. 9-11 ----------------------------------------------------------------------------
    def generate_features(self, x_class: torch.Tensor, x_var: torch.Tensor,
                          labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Self-adapted feature generation (Eq. 9-11); returns ``(X_gen, Y_gen)``.

        The pairs come from :meth:`pair_generator` (keyed by seed, step and rank); each call
        that generates advances ``pair_step``.
        """
        if labels.numel() < 2 or self.gamma == 0:  # j != i impossible for a batch of one
            return x_class.new_zeros((0, ) + x_class.shape[1:]), labels.new_zeros(0)
        classes, counts, num_gen = generation_counts(labels, self.alpha, self.gamma)
        generator = self.pair_generator(labels.device)
        self.pair_step += 1
        idx_class, idx_var, gen_labels = sample_pairs(labels, classes, counts, num_gen,
                                                      generator)
        return x_class[idx_class] + x_var[idx_var], gen_labels

    def pair_generator(self, device: torch.device) -> torch.Generator:
        """The generator of the current batch's pairs: a pure function of ``(pair_seed,
        pair_step, rank)``, so ranks draw independently and resume replays the draws."""
        return rank_generator(int(self.pair_seed), int(self.pair_step), device)

    def forward(self,
                inputs: Union[torch.Tensor, Tuple[torch.Tensor, ...]],
                data_samples: Optional[list] = None,
                tail: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        """See the class docstring for the call protocol."""
        x = inputs[-1] if isinstance(inputs, (tuple, list)) else inputs
        if self.requires_tail and tail is None:
            raise ValueError(
                "AFANeck(placement='before_last_stage') needs the backbone's last stage: "
                "build it inside model=dict(type='LabelAwareClassifier', "
                "backbone=dict(type='TimmSplitBackbone', ...)), or set "
                "placement='after_last_stage'.")
        generate = data_samples is not None and self.generating
        if data_samples is None or not (generate or self.attention_addition):
            feats, parts = self.enhance(x), None
        else:
            parts = self.decompose(x)
            feats = parts['x_enh']
        extras: Dict[str, object] = {}
        num_gen = 0
        if generate:
            labels = torch.cat([ds.gt_label for ds in data_samples]).to(x.device)
            x_gen, gen_labels = self.generate_features(parts['x_class'], parts['x_var'],
                                                       labels)
            feats = torch.cat([feats, x_gen], dim=0)
            extras['gen_labels'] = gen_labels
            num_gen = gen_labels.numel()
        if tail is not None:
            if num_gen and self.gen_bn == 'frozen_stats':
                batch = feats.shape[0] - num_gen
                real = tail(feats[:batch])
                with frozen_bn_stats(tail):
                    feats = torch.cat([real, tail(feats[batch:])], dim=0)
            else:
                feats = tail(feats)
        pooled = F.adaptive_avg_pool2d(feats, 1).flatten(1)
        if data_samples is None:
            return (pooled, )
        log_vars = dict(afa_num_gen=torch.tensor(float(num_gen), device=x.device))
        if parts is not None:
            with torch.no_grad():
                log_vars['afa_class_ratio'] = (parts['x_class'].float().norm() /
                                               parts['v'].float().norm().clamp_min(1e-12))
        extras['log_vars'] = log_vars
        return (pooled, ), extras
