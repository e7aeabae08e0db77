"""multimodal_sched: PID-guided two-stage multimodal training (Algorithm 1).

Uses only the public :mod:`fastpid` API.  Entry points:

* :func:`run` - a full run (Stage I under the controller, Stage II fusion) with a run directory,
  in one process or under torchrun;
* :class:`Controller` / :class:`Decision` - Algorithm 1's state machine for hand-written loops;
* :func:`probe` - PID (bits) of two frozen encoders on a probe loader;
* :func:`compare` / :func:`grid` - the comparison table and the grid analysis (:mod:`.experiments`).

The training parts need the ``sched`` extra (torch, scikit-learn, tqdm, ...); they are imported
on first use, so the config and the controller work without it and a missing extra is reported
in one line (:func:`require_extra`).
"""
import importlib
import importlib.util

from .config import RunConfig, load_config, save_config
from .controller import Controller, Decision

__all__ = [
    "run", "RunConfig", "RunResult", "RunInterrupted", "load_config", "save_config",
    "Controller", "Decision", "probe",
    "MultimodalData", "as_multimodal_data", "make_cg_digits", "make_synthetic", "DATASETS",
    "Strategy", "STRATEGIES", "require_extra", "compare", "grid",
]

_LAZY = {"run": "runner", "RunResult": "runner", "RunInterrupted": "runner", "probe": "probing",
         "MultimodalData": "data", "as_multimodal_data": "data", "make_cg_digits": "data",
         "make_synthetic": "data", "DATASETS": "data", "Strategy": "methods", "STRATEGIES": "methods",
         "compare": "experiments", "grid": "experiments"}
#: what the training parts import from the ``sched`` extra
SCHED_MODULES = ("torch", "sklearn", "tqdm")


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):   # ValueError: a module set to None in sys.modules (hidden)
        return False


def require_extra() -> None:
    """Raise ``ImportError`` in one line naming the extra to install when a module of it is missing."""
    missing = [name for name in SCHED_MODULES if not _installed(name)]
    if missing:
        raise ImportError(f"multimodal_sched needs {', '.join(missing)}: install the 'sched' extra, "
                          "pip install 'fastpid[sched]'")


def __getattr__(name):
    if name in _LAZY:
        require_extra()
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'multimodal_sched' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
