"""fastpid: exact, fast bivariate Partial Information Decomposition (BROJA), in bits.

>>> import fastpid
>>> r = fastpid.pid(fastpid.distributions.xor())
>>> round(r.S, 6)
1.0
"""
from . import distributions
from .api import pid
from .backend import backend_names
from .exceptions import ConvergenceWarning, EngineFallbackWarning, SolverError
from .histogram import joint_histogram
from .information import conditional_mutual_information, mutual_information
from .methods import available_methods
from .result import PIDResult
from .estimate import PIDEstimate, pid_from_samples

__version__ = "0.1.0"

__all__ = [
    "pid",
    "PIDResult",
    "pid_from_samples",
    "PIDEstimate",
    "ConvergenceWarning",
    "EngineFallbackWarning",
    "SolverError",
    "joint_histogram",
    "mutual_information",
    "conditional_mutual_information",
    "available_methods",
    "backend_names",
    "distributions",
    "__version__",
]
