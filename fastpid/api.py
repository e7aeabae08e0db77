"""The public entry point :func:`pid`."""
from __future__ import annotations

import inspect
import warnings

import numpy as np

from ._validation import check_distribution
from .backend import get_backend
from .exceptions import ConvergenceWarning
from .information import LOG2, atoms_from_q
from .kernels.entropy_sums import atoms_from_rows_log, marginal_rows, normalize_checked
from .methods import _REGISTRY, get_solver
from .methods import exact as _exact
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


def _warn_unconverged(method, n_bad, n, max_violation, hint, stacklevel):
    """The ConvergenceWarning of ``pid`` (``stacklevel`` counted from this function)."""
    warnings.warn(
        f"method={method!r}: {n_bad} of {n} distribution(s) did not converge "
        f"(max marginal violation {max_violation:.2e}); {hint}",
        ConvergenceWarning,
        stacklevel=stacklevel,
    )


_EXACT_NUMPY = _REGISTRY[("exact", "numpy")]
_EXACT_DEFAULTS: list = []  # exact.options() without arguments, validated once on first use
_FLOAT64 = np.dtype(np.float64)


def _pid_exact_single(P, options):
    """``pid(P, **options)`` with ``method="exact"`` for one real (integer or floating) ndarray
    of shape (n1, n2, ny), every axis of length >= 2: the same conversion,
    checks, solve, atoms and result as the general path with fewer NumPy calls
    and no intermediate batch objects.  Returns None where the general path must run (other input,
    a re-registered solver, or a histogram that fails the quick checks: the
    general path then names the problem)."""
    if P.ndim != 3 or min(P.shape) < 2 or _REGISTRY.get(("exact", "numpy")) is not _EXACT_NUMPY:
        return None
    _bind_options(_EXACT_NUMPY, "exact", options)  # unknown names first, as in pid
    if P.dtype != _FLOAT64 or not P.flags.c_contiguous:
        if P.dtype.kind not in "iuf":  # bool, complex, object, ...: the general path's errors
            return None
        P = np.asarray(P, dtype=np.float64, order="C")  # as NumpyBackend.coerce converts
    p = normalize_checked(P)
    if p.size == 0:  # NaN, negative, infinite or zero total mass: the detailed checks
        return None
    if options:
        opts = _exact.options(**options)  # validated after P, as the registered solver does
    else:
        if not _EXACT_DEFAULTS:
            _EXACT_DEFAULTS.append(_exact.options())
        opts = _EXACT_DEFAULTS[0]
    tol, feas_tol = opts["tol"], opts["feas_tol"]
    q, f, g, iters, gap, viol, status = _exact.solve_single(p, tol, feas_tol, opts["max_iter"])
    rows, widths, positive = marginal_rows(p, q)
    R, U1, U2, S, I, I1, I2 = atoms_from_rows_log(rows, np.log(positive), widths, LOG2)[:, 0].tolist()
    status = int(status)
    converged = status == 0
    violation = float(viol)
    if not converged:
        _warn_unconverged("exact", 1, 1, violation, _exact.HINT, stacklevel=4)
    return PIDResult._from_fields({
        "R": R, "U1": U1, "U2": U2, "S": S, "I": I, "I1": I1, "I2": I2,
        "q": q.reshape(P.shape),
        "converged": converged,
        "violation": violation,
        "iterations": int(iters),
        "gap": float(gap) / LOG2,
        "method": "exact",
        "backend": "numpy",
        "info": {"status": _exact.STATUS[status], "tol": tol, "feas_tol": feas_tol,
                 "dual_f": f[None], "dual_g": g[None]},
    })


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
    if type(P) is np.ndarray and backend is None and type(method) is str and method == "exact":
        res = _pid_exact_single(P, solver_options)
        if res is not None:
            return res
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
        _warn_unconverged(method, n_bad, conv.size, float(np.max(viol)), hint, stacklevel=3)

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
