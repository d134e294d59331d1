"""How many experts a multi-expert model (RIDE with its router) used per test sample."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS


@METRICS.register_module()
class ExpertUsage(BaseMetric):
    """Mean number of experts per sample and the share of samples using each number.

    Reads the ``num_experts`` field that :class:`~lt_plugins.models.heads.RIDEHead` (all
    experts) and :class:`~lt_plugins.models.classifiers.RIDEClassifier` (router-driven
    inference, RIDE Sec. 3.3) put in every prediction. Results: ``mean_experts``,
    ``frac_<n>_experts`` (percent of samples that used ``n`` experts) and, when
    ``num_experts`` is given, ``relative_expert_compute`` = ``mean_experts / num_experts``
    (the expert branches' share of the all-experts cost; the shared trunk always runs).

    Args:
        num_experts (int, optional): ``K``, for the relative cost and to list counts with no
            sample as 0.
        collect_device, prefix: as in ``mmengine.evaluator.BaseMetric``.
    """

    default_prefix = 'experts'

    def __init__(self, num_experts: Optional[int] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_experts = None if num_experts is None else int(num_experts)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'num_experts' not in sample:
                raise KeyError('ExpertUsage: predictions carry no `num_experts`; use it with '
                               'a RIDEHead / RIDEClassifier model.')
            self.results.append(int(sample['num_experts']))

    def compute_metrics(self, results: List[int]) -> Dict[str, float]:
        used = np.asarray(results, dtype=np.int64)
        top = max(int(used.max()), self.num_experts or 0)
        out = dict(mean_experts=float(used.mean()))
        for n in range(1, top + 1):
            out[f'frac_{n}_experts'] = float((used == n).mean() * 100.0)
        if self.num_experts:
            out['relative_expert_compute'] = float(used.mean() / self.num_experts)
        return out
