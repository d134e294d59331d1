from .balanced_softmax_loss import BalancedSoftmaxLoss
from .circle_memory_loss import CircleMemoryLoss
from .class_balanced_loss import ClassBalancedLoss
from .cosface_loss import CosFaceLoss
from .ldam_loss import LDAMLoss
from .logit_adjusted_loss import LogitAdjustedLoss
from .ride_diversity_loss import RIDEDiversityLoss

__all__ = [
    'BalancedSoftmaxLoss', 'CircleMemoryLoss', 'ClassBalancedLoss', 'CosFaceLoss', 'LDAMLoss',
    'LogitAdjustedLoss', 'RIDEDiversityLoss'
]
