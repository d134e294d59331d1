from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .parts import *  # noqa: F401,F403
from .stg import FeatureCacheClassifier, SemanticTransformationGenerator  # noqa: F401
