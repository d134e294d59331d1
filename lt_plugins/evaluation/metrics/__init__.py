
from .shot_accuracy import ShotAccuracy  # noqa: F401
