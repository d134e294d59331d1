
from .rebalanced_fifo import RebalancedFIFOMemory  # noqa: F401
