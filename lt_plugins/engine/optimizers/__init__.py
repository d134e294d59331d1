from .hybrid_sgd_adam import HybridSGDAdam  # the optimizer IEM uses (SGD + Adam groups)

__all__ = ['HybridSGDAdam']
