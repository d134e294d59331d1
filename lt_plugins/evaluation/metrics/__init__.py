from .expert_usage import ExpertUsage
from .reid_metric import ReIDMetric
from .shot_accuracy import ShotAccuracy

__all__ = ['ExpertUsage', 'ReIDMetric', 'ShotAccuracy']
