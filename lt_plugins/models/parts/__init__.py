from .feature_generator import STGFeatureGenerator
from .memory_reader import EpisodicMemoryReader
from .memory_term import MBJMemoryTerm

__all__ = ['EpisodicMemoryReader', 'MBJMemoryTerm', 'STGFeatureGenerator']
