from .reid_metric import ReIDMetric
from .shot_accuracy import ShotAccuracy

__all__ = ['ReIDMetric', 'ShotAccuracy']
