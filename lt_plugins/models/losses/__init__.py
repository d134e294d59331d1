from .circle_memory_loss import CircleMemoryLoss
from .cosface_loss import CosFaceLoss
from .ldam_loss import LDAMLoss
from .ride_diversity_loss import RIDEDiversityLoss

__all__ = ['CircleMemoryLoss', 'CosFaceLoss', 'LDAMLoss', 'RIDEDiversityLoss']
