from .circle_memory_loss import CircleMemoryLoss
from .cosface_loss import CosFaceLoss

__all__ = ['CircleMemoryLoss', 'CosFaceLoss']
