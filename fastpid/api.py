"""The public entry point :func:`pid`."""
from __future__ import annotations

import inspect
import warnings

import numpy as np

from ._validation import check_distribution
from .backend import get_backend
from .exceptions import ConvergenceWarning
from .information import atoms_from_q
from .methods import get_solver
from .result import PIDResult

__all__ = ["pid"]


_OPTION_NAMES: dict = {}  # solver -> its keyword-only option names (read once from its signature)


def _bind_options(solver, method, options):
    if not options:
        return
    valid = _OPTION_NAMES.get(solver)
    if valid is None:
        sig = inspect.signature(solver)
        valid = _OPTION_NAMES[solver] = [n for n, prm in sig.parameters.items() if prm.kind == prm.KEYWORD_ONLY]
    bad = sorted(set(options) - set(valid))
    if bad:
        raise TypeError(
            f"Unknown option(s) {bad} for method {method!r}; valid options: {valid}"
        )


def pid(P, *, method: str = "exact", backend: str | None = None, **solver_options) -> PIDResult:
    """Bivariate partial information decomposition (BROJA) of P[x1, x2, y], in bits.

    Solves q* = argmax H_q(Y | X1, X2) over q with q(x1, y) = p(x1, y) and
    q(x2, y) = p(x2, y), then U1 = I_q*(X1;Y|X2), U2 = I_q*(X2;Y|X1),
    R = I(X1;Y) - U1 and S = I_p(X1,X2;Y) - I_q*(X1,X2;Y).

    Parameters
    ----------
    P : array-like or torch.Tensor, shape (n1, n2, ny) or (..., n1, n2, ny)
        Nonnegative finite counts or probabilities; each distribution is
        normalized internally.
    method : {"exact", "cvx", "fastpid", "analytic"}
        ``"exact"`` (default): certified interior-point solver (duality gap and
        violation reported).  ``"cvx"``: CVXPY conic reference (SCS by default,
        ``solver="CLARABEL"`` selectable).  ``"fastpid"``: the paper's
        Algorithm 2 (analytic start + Sinkhorn-projected Adam).
        ``"analytic"``: closed-form conditional-independence proxy only.
    backend : {"numpy", "torch"} or None
        Defaults to the input's type: a torch tensor in gives tensors out.
    **solver_options
        Keyword options of the chosen method (e.g. ``max_iter``, ``tol``).

    Returns
    -------
    PIDResult
        One type whatever the options.  A solve that did not converge or whose
        q violates the marginals beyond tolerance has ``converged=False`` and
        emits a :class:`fastpid.ConvergenceWarning`.
    """
    nx = get_backend(P, backend)
    solver = get_solver(method, nx.name)
    _bind_options(solver, method, solver_options)
    p, batch_shape = check_distribution(P, nx)
    sol = solver(p, **solver_options)
    atoms = sol.atoms if sol.atoms is not None else atoms_from_q(nx, p, sol.q)

    conv = np.asarray(nx.to_numpy(sol.converged), dtype=bool)
    if not (bool(conv.item()) if conv.size == 1 else conv.all()):
        n_bad = int((~conv).sum())
        viol = np.asarray(nx.to_numpy(sol.violation))
        hint = sol.info.get("hint", "increase max_iter or loosen tol")
        warnings.warn(
            f"method={method!r}: {n_bad} of {conv.size} distribution(s) did not converge "
            f"(max marginal violation {float(np.max(viol)):.2e}); {hint}",
            ConvergenceWarning,
            stacklevel=2,
        )

    full_shape = tuple(batch_shape) + tuple(p.shape[1:])

    def shaped(v, kind=None):
        if batch_shape != ():
            return v.reshape(batch_shape)
        return nx.to_scalar(v[0]) if kind is None else kind(v[0].item())

    info = dict(sol.info)
    info.pop("hint", None)
    return PIDResult(
        **{k: shaped(v) for k, v in atoms.items()},
        q=sol.q.reshape(full_shape),
        converged=shaped(sol.converged, bool),
        violation=shaped(sol.violation, float),
        iterations=shaped(sol.iterations, int),
        gap=shaped(sol.gap, float),
        method=method,
        backend=nx.name,
        info=info,
    )
