"""Generated datasets: no download, deterministic from the seed (``cg-digits``, ``synthetic``)."""
from .cg_digits import PALETTE, make_cg_digits
from .synthetic import make_synthetic

__all__ = ["make_cg_digits", "make_synthetic", "PALETTE"]
