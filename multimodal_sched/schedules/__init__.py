"""Stage I schedules the runner dispatches to (besides the PID controller and the fixed schedule).

``config.method`` names the schedule and ``config.method_options`` its settings; the runner
asks :meth:`Schedule.plan` which modality to train each Stage I epoch, reports each epoch's
val accuracy to :meth:`Schedule.observe`, and runs Stage II with ``config.stage2`` afterwards.
"""
from . import sequential, udi  # noqa: F401  (each module registers its schedule)
from .base import SCHEDULES, Schedule, get_schedule, register, schedule_names

__all__ = ["SCHEDULES", "Schedule", "get_schedule", "register", "schedule_names"]
