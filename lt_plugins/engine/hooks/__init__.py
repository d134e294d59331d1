from .class_counts_hook import ClassCountsHook
from .drw_hook import DRWHook
from .feature_cache_hook import FeatureCacheHook
from .iem_memory_hook import IEMMemoryHook
from .lbls_hook import LBLSHook
from .max_norm_hook import MaxNormHook
from .mbj_memory_stats_hook import MBJMemoryStatsHook
from .mbj_memory_switch_hook import MBJMemorySwitchHook

__all__ = [
    'ClassCountsHook', 'DRWHook', 'FeatureCacheHook', 'IEMMemoryHook', 'LBLSHook',
    'MaxNormHook', 'MBJMemoryStatsHook', 'MBJMemorySwitchHook'
]
