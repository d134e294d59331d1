"""lt_plugins: long-tailed visual recognition methods as MMPretrain plugins.

Importing the package (directly or through ``custom_imports``) registers every component
in ``mmpretrain.registry`` and applies the compatibility fixes of :mod:`lt_plugins.compat`.
"""
from .version import __version__
from . import compat

compat.apply_all()

from . import datasets, engine, evaluation, memory, models  # noqa: E402,F401  (registration)

__all__ = ['__version__']
