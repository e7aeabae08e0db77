"""multimodal_sched: PID-guided two-stage multimodal training (Algorithm 1).

Uses only the public :mod:`fastpid` API.  Entry points:

* :func:`run` - a full run (Stage I under the controller, Stage II fusion) with a run directory,
  in one process or under torchrun;
* :class:`Controller` / :class:`Decision` - Algorithm 1's state machine for hand-written loops;
* :func:`probe` - PID (bits) of two frozen encoders on a probe loader.
"""
from .config import RunConfig, load_config, save_config
from .controller import Controller, Decision
from .data import DATASETS, MultimodalData, as_multimodal_data, make_cg_digits, make_synthetic
from .methods import STRATEGIES, Strategy
from .probing import probe
from .runner import RunInterrupted, RunResult, run

__all__ = [
    "run", "RunConfig", "RunResult", "RunInterrupted", "load_config", "save_config",
    "Controller", "Decision", "probe",
    "MultimodalData", "as_multimodal_data", "make_cg_digits", "make_synthetic", "DATASETS",
    "Strategy", "STRATEGIES",
]
