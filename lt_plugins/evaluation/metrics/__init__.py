from .open_set_accuracy import OpenSetShotAccuracy, open_set_f_measure, select_open_threshold
from .reid_metric import ReIDMetric
from .shot_accuracy import ShotAccuracy

__all__ = ['OpenSetShotAccuracy', 'ReIDMetric', 'ShotAccuracy', 'open_set_f_measure',
           'select_open_threshold']
