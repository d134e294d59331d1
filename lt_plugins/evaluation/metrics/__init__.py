from .expert_usage import ExpertUsage
from .gap_metric import (GlobalAveragePrecision, global_average_precision,
                         per_class_average_precision)
from .open_set_accuracy import OpenSetShotAccuracy, open_set_f_measure, select_open_threshold
from .reid_metric import ReIDMetric
from .shot_accuracy import ShotAccuracy

__all__ = ['ExpertUsage', 'GlobalAveragePrecision', 'OpenSetShotAccuracy', 'ReIDMetric',
           'ShotAccuracy', 'global_average_precision', 'open_set_f_measure',
           'per_class_average_precision', 'select_open_threshold']
