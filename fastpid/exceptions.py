"""Warning and error classes raised by fastpid."""


class ConvergenceWarning(UserWarning):
    """A solver stopped before meeting its tolerances, or returned a ``q``
    whose marginal-constraint violation exceeds the feasibility tolerance.

    The result is still returned (with ``converged=False``) so it can be
    inspected; its atoms should not be published.
    """


class SolverError(RuntimeError):
    """A solver failed outright (for example the conic solver reported an
    infeasible or unbounded status).  The message carries the solver status."""


class EngineFallbackWarning(UserWarning):
    """``method="exact"`` with ``engine="torch"`` handed distributions it did
    not certify to the Numba engine on the CPU (a device-to-host round trip).
    The answers are still certified; the warning says where the time went."""
