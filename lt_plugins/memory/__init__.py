from .episodic import EpisodicMemory
from .rebalanced_fifo import RebalancedFIFOMemory

__all__ = ['EpisodicMemory', 'RebalancedFIFOMemory']
