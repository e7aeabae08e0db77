"""Experiments on top of :func:`multimodal_sched.run`: the comparison table and the grid analysis."""
from .compare import compare
from .grid import grid

__all__ = ["compare", "grid"]
