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
