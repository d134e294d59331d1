"""ImageClassifier for RIDE: router-driven expert-by-expert inference and router-only training."""
from typing import List, Optional

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .auto_channels import AutoChannelClassifier


@MODELS.register_module()
class RIDEClassifier(AutoChannelClassifier):
    """``ImageClassifier`` for RIDE's multi-expert model (Wang et al., ICLR 2021).

    Backbone :class:`~lt_plugins.models.backbones.MultiExpertBackbone` (shared trunk, ``K``
    expert branches), a pooling neck applied to each expert's map, head
    :class:`~lt_plugins.models.heads.RIDEHead`. Training and plain inference are
    ``ImageClassifier``'s (all experts run; the ensemble is their mean). This subclass adds:

    * **Routed inference** (RIDE Sec. 3.3) when the head has a router and ``routing=True``:
      the trunk runs once, expert 1 on every sample, then for ``k = 1 .. K-1`` router ``k``
      looks at expert ``k``'s feature and the running mean logits and expert ``k + 1`` runs
      only on the samples it sends on (the others stop). The prediction of a sample is the
      mean logits of the experts it used; ``num_experts`` is stored in each data sample
      (:class:`~lt_plugins.evaluation.ExpertUsage` reports it). Compute is saved for real:
      experts run on the subset only.
    * **Router training** (``head.train_router=True``): every parameter except the router's
      is frozen (``requires_grad=False``) and the frozen parts stay in eval mode (BatchNorm
      statistics untouched), as RIDE's second stage does.

    Args: as :class:`~lt_plugins.models.classifiers.AutoChannelClassifier`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ('forward_trunk', 'forward_expert'):
            if not callable(getattr(self.backbone, name, None)):
                raise ValueError(
                    f'RIDEClassifier: the backbone {type(self.backbone).__name__} has no '
                    f"{name}(); use backbone=dict(type='MultiExpertBackbone', model_name=...).")
        k_backbone = getattr(self.backbone, 'num_experts', None)
        k_head = getattr(self.head, 'num_experts', None)
        if k_backbone != k_head:
            raise ValueError(f'RIDEClassifier: backbone.num_experts={k_backbone} but '
                             f'head.num_experts={k_head}; set both to the same number.')
        self.router_only = bool(getattr(self.head, 'train_router', False))
        if self.router_only:
            keep = {id(p) for p in self.head.router_parameters()}
            for p in self.parameters():
                p.requires_grad_(id(p) in keep)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.router_only:
            for module in self.modules():
                if not any(p.requires_grad for p in module.parameters(recurse=False)) and \
                        module is not self and not list(module.children()):
                    module.eval()
        return self

    def _pool(self, fmap: torch.Tensor) -> torch.Tensor:
        if not self.with_neck:
            return fmap
        out = self.neck((fmap, ))
        return out[0] if isinstance(out, (tuple, list)) else out

    def predict(self, inputs: torch.Tensor, data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        head = self.head
        if getattr(head, 'router_hidden', None) is None or not head.routing:
            return super().predict(inputs, data_samples, **kwargs)
        scores, used = self.routed_scores(inputs)
        return head.predictions_with_usage(scores, used.cpu(), data_samples)

    @torch.no_grad()
    def routed_scores(self, inputs: torch.Tensor):
        """``(scores (B, C), experts used (B,))`` of router-driven inference."""
        head, backbone = self.head, self.backbone
        shared = backbone.forward_trunk(inputs)
        feat = self._pool(backbone.forward_expert(shared, 0))
        total = head.expert_logits(0, feat)
        used = torch.ones(total.shape[0], dtype=torch.long, device=total.device)
        active = torch.ones_like(used, dtype=torch.bool)
        for k in range(1, head.num_experts):
            idx = active.nonzero(as_tuple=True)[0]
            go = head.router_logit(k - 1, feat[idx], total[idx] / k) > 0  # sigmoid > 0.5
            active[idx] = go
            if not bool(go.any()):
                break
            idx = idx[go]
            new = self._pool(backbone.forward_expert(shared[idx], k))
            feat = feat.clone()
            feat[idx] = new
            total[idx] += head.expert_logits(k, new)
            used[idx] += 1
        return total / used.unsqueeze(1).to(total.dtype), used
