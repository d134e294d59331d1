from .feature_generator import STGFeatureGenerator
from .logit_adjustment import PostHocLogitAdjustment
from .memory_reader import EpisodicMemoryReader
from .memory_term import MBJMemoryTerm

__all__ = ['EpisodicMemoryReader', 'MBJMemoryTerm', 'PostHocLogitAdjustment',
           'STGFeatureGenerator']
