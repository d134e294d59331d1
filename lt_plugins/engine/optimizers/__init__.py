from .autocast_wrapper import AutocastOptimWrapper  # --amp on CPU (bfloat16 autocast)
from .hybrid_sgd_adam import HybridSGDAdam  # the optimizer IEM uses (SGD + Adam groups)

__all__ = ['AutocastOptimWrapper', 'HybridSGDAdam']
