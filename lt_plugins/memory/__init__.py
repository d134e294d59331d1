
from .rebalanced_fifo import RebalancedFIFOMemory  # noqa: F401
from .episodic import EpisodicMemory  # noqa: F401
