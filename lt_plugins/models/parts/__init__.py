from .memory_term import MBJMemoryTerm

__all__ = ['MBJMemoryTerm']
