"""Stage II methods: one module per strategy, each registered by name in ``STRATEGIES``.

``config.stage2`` names the strategy and ``config.stage2_options`` its hyperparameters;
the runner calls it at the hook points documented in :mod:`multimodal_sched.methods.base`.
"""
from . import agm, aux, concat, gblending, mla, mmpareto, ogm_ge, pmr, uniform  # noqa: F401  (each module registers its strategy)
from .base import STRATEGIES, JointOutput, Strategy, get_strategy, register, strategy_names

__all__ = ["STRATEGIES", "JointOutput", "Strategy", "get_strategy", "register", "strategy_names"]
