
from .cosface_loss import CosFaceLoss  # noqa: F401
from .circle_memory_loss import CircleMemoryLoss  # noqa: F401
