"""``method="exact"`` (the default): certified interior-point BROJA solver.

A primal-dual interior-point method on the dual of the BROJA program (one
smooth log-sum-exp constraint per (x1, x2) block; the primal q is recovered as
block mass times softmax), exploiting its Kronecker structure: one
(n1 + n2)·ny Cholesky factor per Newton step, or, where that needs fewer
flops, per-label factors with a Woodbury correction (see
:mod:`fastpid.kernels.broja_ipm`), compiled with Numba and parallel over a
batch.  Every answer carries a certificate: ``violation`` (max marginal
violation of q) and ``gap`` (duality gap in bits, a rigorous bound on the error
of I_q(X1,X2;Y) and therefore of each atom for a feasible q).  ``converged``
means ``gap <= tol`` and ``violation <= feas_tol``.

On torch tensors the option ``engine`` chooses the solver: ``"numba"`` solves
with the Numba kernel on the CPU in float64 (a detach / copy round trip;
results are moved back to the input's device and dtype); ``"torch"`` with a
batched torch port of the same dual interior point
(:mod:`fastpid.kernels.broja_ipm_torch`) on the input's device, in float64,
re-solving with Numba whatever it does not certify (with an
:class:`~fastpid.exceptions.EngineFallbackWarning`); ``"auto"`` (default) picks
torch for CUDA tensors and Numba for CPU tensors (faster there).  Gradients of
every atom with respect to ``P`` come from the envelope theorem in
:class:`_ExactAtoms`: with V(p) = min_q sum q log(q/s) = -H_q*(Y|X1,X2),
dV/dp(x1,x2,y) = f(x1,y) + g(x2,y), the multipliers of the two marginal
constraints.  Nothing is differentiated through solver iterations; ``q`` is
returned detached.  See ``docs/torch.md`` for the gradient semantics on the
boundary (zero cells).
"""
from __future__ import annotations

import contextlib
import inspect
import warnings

import numpy as np
from threadpoolctl import ThreadpoolController

from .._validation import check_positive_float, check_positive_int
from ..exceptions import EngineFallbackWarning
from ..information import LOG2, atoms_from_q
from ..kernels.broja_ipm import STATUS, solve_batch, solve_one
from . import Solution, register
from ._common import TORCH, diagnostics_to_tensors, host64, torch

# the ConvergenceWarning's advice for an uncertified exact solve
HINT = "increase max_iter or loosen tol / feas_tol"

# below this many distributions the thread pool costs more than it saves
PARALLEL_MIN_BATCH = 8

_BLAS_CONTROLLER = None
_BLAS_LIBS = ()


def _single_blas_thread():
    """Context limiting BLAS to one thread (the controller is built once: ~4 ms).

    Where every BLAS library already runs one thread (``OMP_NUM_THREADS=1``,
    ``OPENBLAS_NUM_THREADS=1``, a single core, an enclosing limit) there is
    nothing to limit and the ~25 µs of ``ThreadpoolController.limit`` are
    skipped; otherwise threadpoolctl sets and restores the limit as before."""
    global _BLAS_CONTROLLER, _BLAS_LIBS
    if _BLAS_CONTROLLER is None:
        import scipy.linalg  # noqa: F401  (loads the OpenBLAS numba's LAPACK calls use)

        _BLAS_CONTROLLER = ThreadpoolController()
        _BLAS_LIBS = tuple(_BLAS_CONTROLLER.select(user_api="blas").lib_controllers)
    for lib in _BLAS_LIBS:
        if lib.num_threads != 1:
            return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")
    return contextlib.nullcontext()


_NUMBA_POOL_STARTED = False


def _start_numba_pool():
    """Start numba's thread pool once, leaving the caller's OpenMP settings as they were.

    With numba's ``omp`` threading layer, starting the pool calls
    ``omp_set_num_threads(NUMBA_NUM_THREADS)`` on the OpenMP runtime it shares
    with torch (numba issue #9387): after the first batched solve, a program that
    had set ``torch.set_num_threads(1)`` (or ``OMP_NUM_THREADS=1``) would run
    its torch operations on every core, and a seeded training run would give
    other numbers than the same run started after another one.  The OpenMP
    thread counts loaded before the start are put back after it."""
    global _NUMBA_POOL_STARTED
    if _NUMBA_POOL_STARTED:
        return
    import numba

    before = {lib.filepath: lib.num_threads
              for lib in ThreadpoolController().select(user_api="openmp").lib_controllers}
    numba.get_num_threads()  # starts the pool
    for lib in ThreadpoolController().select(user_api="openmp").lib_controllers:
        if lib.filepath in before and lib.num_threads != before[lib.filepath]:
            lib.set_num_threads(before[lib.filepath])
    _NUMBA_POOL_STARTED = True


def solve_single(p, tol, feas_tol, max_iter):
    """The kernel's raw solve of one normalized float64 distribution (tolerances
    in bits), with one BLAS thread: (q, f, g, iterations, gap_nats, violation, status)."""
    with _single_blas_thread():
        return solve_one(p, tol * LOG2, feas_tol, max_iter)


def options(
    *,
    tol: float = 1e-7,
    feas_tol: float = 1e-12,
    max_iter: int = 200,
) -> dict:
    """Certified interior-point solve.

    Parameters
    ----------
    tol : target duality gap in bits (bounds the error of every atom).
    feas_tol : max allowed marginal violation of q.
    max_iter : cap on Newton iterations (a warning is issued when reached).
    """
    return dict(
        tol=check_positive_float(tol, "tol"),
        feas_tol=check_positive_float(feas_tol, "feas_tol"),
        max_iter=check_positive_int(max_iter, "max_iter"),
    )


ENGINES = ("auto", "torch", "numba")


def torch_options(*, engine: str = "auto", **numpy_options) -> dict:
    """The options of the NumPy solve plus ``engine`` (one of ENGINES)."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return dict(options(**numpy_options), engine=engine)


torch_options.__signature__ = inspect.Signature(
    [*inspect.signature(options).parameters.values(),
     inspect.Parameter("engine", inspect.Parameter.KEYWORD_ONLY, default="auto")]
)


@register("exact", backend="numpy", options=options)
def solve(p, *, tol, feas_tol, max_iter) -> Solution:
    """Certified interior-point solve of the batch ``p`` (validated options)."""
    p = np.ascontiguousarray(p, dtype=np.float64)
    # One BLAS thread: the Cholesky factors are small, a multi-threaded
    # OpenBLAS only spins (3x slower measured on 20x20x6), and inside the
    # parallel batch it would nest BLAS threads in numba's worker threads.
    with _single_blas_thread():
        if p.shape[0] >= PARALLEL_MIN_BATCH:
            _start_numba_pool()
            out = solve_batch(p, tol * LOG2, feas_tol, max_iter)
        elif p.shape[0] == 1:  # the common single problem: its results as batches of one
            o = solve_one(p[0], tol * LOG2, feas_tol, max_iter)
            out = (o[0][None], o[1][None], o[2][None], np.array([o[3]], dtype=np.int64),
                   np.array([o[4]], dtype=np.float64), np.array([o[5]], dtype=np.float64),
                   np.array([o[6]], dtype=np.int64))
        else:  # a few problems: no thread-pool start-up
            outs = [solve_one(pt, tol * LOG2, feas_tol, max_iter) for pt in p]
            out = tuple(np.asarray([o[k] for o in outs]) for k in range(7))
    q, f, g, iters, gap, viol, status = out
    st = [STATUS[s] for s in status.tolist()]
    return Solution(
        q=q,
        converged=(status == 0),
        violation=viol,
        iterations=iters,
        gap=gap / LOG2,
        info={
            "status": st[0] if len(st) == 1 else st,
            "tol": tol, "feas_tol": feas_tol,
            "dual_f": f, "dual_g": g,
            "hint": HINT,
        },
    )


ATOM_KEYS = ("R", "U1", "U2", "S", "I", "I1", "I2")

if torch is not None:

    def _slopes(pn: torch.Tensor, f: torch.Tensor, g: torch.Tensor) -> dict:
        """Gradients (nats, up to an additive constant per distribution) of the
        closed-form information terms and of I_q* with respect to p, at p = pn.

        Entropy terms: dH(m)/dp = -log m - 1, with log 0 := 0 (zero-mass terms have
        slope 0, the torch backend's convention).  V = min_q sum q log(q/s):
        dV/dp = f(x1,y) + g(x2,y) on the BROJA support {p(x1,y) > 0, p(x2,y) > 0},
        0 outside it.  The additive constants (the -1's, and any uniform shift of
        the duals) cancel in the chain through the normalization p = P / sum(P).
        """
        a = pn.sum(2)                      # (B, n1, ny)
        b = pn.sum(1)                      # (B, n2, ny)
        py = a.sum(1)                      # (B, ny)
        p1 = a.sum(2)                      # (B, n1)
        p2 = b.sum(2)                      # (B, n2)
        p12 = pn.sum(3)                    # (B, n1, n2)
        ly = TORCH.safe_log(py)[:, None, None, :]
        s_i1 = TORCH.safe_log(a)[:, :, None, :] - TORCH.safe_log(p1)[:, :, None, None] - ly
        s_i2 = TORCH.safe_log(b)[:, None, :, :] - TORCH.safe_log(p2)[:, None, :, None] - ly
        s_i = TORCH.safe_log(pn) - TORCH.safe_log(p12)[..., None] - ly
        supp = (a[:, :, None, :] > 0) & (b[:, None, :, :] > 0)
        s_v = torch.where(supp, f[:, :, None, :] + g[:, None, :, :], torch.zeros_like(pn))
        s_iq = s_v - ly                     # I_q* = H(Y) + V
        return dict(I=s_i, I1=s_i1, I2=s_i2, Iq=s_iq)

    class _ExactAtoms(torch.autograd.Function):
        """Atoms (R, U1, U2, S, I, I1, I2) in bits of the optimizer ``q`` as a
        differentiable function of the (possibly unnormalized) histogram ``p``.

        Forward: the atoms of the solved ``q`` (float64, no solver in the graph).
        Backward: envelope theorem, U1 = Iq - I2, U2 = Iq - I1, R = I1 + I2 - Iq,
        S = I - Iq with Iq = H(Y) + V and dV/dp = f + g, chained through p / sum(p).
        """

        @staticmethod
        def forward(ctx, p, q, f, g):
            P = p.detach().to(torch.float64)
            T = P.sum(dim=(1, 2, 3), keepdim=True)
            pn = P / T
            atoms = atoms_from_q(TORCH, pn, q.to(torch.float64))
            ctx.save_for_backward(pn, T, f.to(torch.float64), g.to(torch.float64))
            ctx.out_dtype = p.dtype
            return tuple(atoms[k].to(p.dtype) for k in ATOM_KEYS)

        @staticmethod
        def backward(ctx, *grads):
            pn, T, f, g = ctx.saved_tensors
            s = _slopes(pn, f, g)
            w = {}
            for k, gr in zip(ATOM_KEYS, grads):
                w[k] = None if gr is None else gr.to(torch.float64)[:, None, None, None]
            G = torch.zeros_like(pn)

            def add(key, term):
                nonlocal G
                if w[key] is not None:
                    G = G + w[key] * term

            add("U1", s["Iq"] - s["I2"])
            add("U2", s["Iq"] - s["I1"])
            add("R", s["I1"] + s["I2"] - s["Iq"])
            add("S", s["I"] - s["Iq"])
            add("I", s["I"])
            add("I1", s["I1"])
            add("I2", s["I2"])
            G = G / LOG2
            # chain through the normalization pn = P / T: dF/dP = (G - <G, pn>) / T
            G = (G - (G * pn).sum(dim=(1, 2, 3), keepdim=True)) / T
            return G.to(ctx.out_dtype), None, None, None

    def exact_atoms(p: torch.Tensor, q: torch.Tensor, f: torch.Tensor, g: torch.Tensor) -> dict:
        """Differentiable atoms (bits) from a solved BROJA optimum.

        ``p`` (B, n1, n2, ny) nonnegative (normalized internally); ``q`` the optimizer
        and ``f`` (B, n1, ny), ``g`` (B, n2, ny) the multipliers of the (x1,y) and
        (x2,y) marginal constraints, with f + g = log q(y|x1,x2) on the support.
        """
        out = _ExactAtoms.apply(p, q.detach(), f.detach(), g.detach())
        return dict(zip(ATOM_KEYS, out))

    def _resolve_engine(engine, p) -> str:
        """"auto": the native torch solver on CUDA tensors, the Numba kernel on CPU
        tensors (faster there: see docs/torch.md for the measurements)."""
        if engine == "auto":
            return "torch" if p.device.type == "cuda" else "numba"
        return engine

    @register("exact", backend="torch", options=torch_options)
    def solve_torch(p, *, engine, **opts) -> Solution:
        """``method="exact"`` on tensors: atoms with envelope-theorem gradients.

        ``engine="numba"``: the certified NumPy/Numba solver on a float64 CPU copy
        of ``p``, results moved back to ``p``'s device and dtype.
        ``engine="torch"``: the batched torch port of the dual interior point
        (:mod:`fastpid.kernels.broja_ipm_torch`) on ``p``'s device, in float64;
        the distributions it does not certify within ``max_iter`` are re-solved
        by the Numba kernel on the CPU (``info["numba_fallback"]`` and an
        :class:`~fastpid.exceptions.EngineFallbackWarning`).
        """
        if _resolve_engine(engine, p) == "torch":
            return _solve_native(p, **opts)
        sol = solve(host64(p), **opts)
        q64 = torch.as_tensor(sol.q, dtype=torch.float64, device=p.device)
        f64 = torch.as_tensor(sol.info["dual_f"], dtype=torch.float64, device=p.device)
        g64 = torch.as_tensor(sol.info["dual_g"], dtype=torch.float64, device=p.device)
        info = dict(sol.info)
        info["dual_f"], info["dual_g"] = f64, g64
        info["engine"] = "numba"
        info["compute"] = "Numba kernel on the CPU in float64 (tensor round trip)"
        atoms = exact_atoms(p, q64, f64, g64)
        return Solution(q=q64.to(p.dtype), atoms=atoms, info=info, **diagnostics_to_tensors(sol, p))

    def _solve_native(p, *, tol, feas_tol, max_iter) -> Solution:
        """Native batched torch interior point on ``p.device`` (float64 inside),
        with a Numba re-solve of every distribution it leaves uncertified."""
        from ..kernels.broja_ipm_torch import solve_batch as solve_batch_torch

        pd = p.detach()
        q64, f64, g64, iters, gap, viol, st = solve_batch_torch(pd, tol * LOG2, feas_tol, max_iter)
        gap = gap / LOG2
        status = [STATUS[int(s)] for s in st.cpu()]
        converged = st == 0
        idx = (~converged).nonzero().squeeze(1)
        n_fb = int(idx.numel())
        if n_fb:
            # never hand back an uncertified torch answer: the Numba kernel
            # re-solves those distributions on the CPU
            warnings.warn(
                f"method='exact', engine='torch': {n_fb} of {len(status)} distribution(s) were not "
                f"certified within max_iter={max_iter} on {p.device} and were re-solved by the Numba "
                "engine on the CPU (info['numba_fallback_index'] lists them)",
                EngineFallbackWarning,
                stacklevel=5,
            )
            sol = solve(host64(pd[idx]), tol=tol, feas_tol=feas_tol, max_iter=max_iter)
            dev = p.device
            as64 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64, device=dev)  # noqa: E731
            q64[idx] = as64(sol.q)
            f64[idx] = as64(sol.info["dual_f"])
            g64[idx] = as64(sol.info["dual_g"])
            iters[idx] = iters[idx] + torch.as_tensor(np.asarray(sol.iterations, dtype=np.int64), device=dev)
            gap[idx] = as64(sol.gap)
            viol[idx] = as64(sol.violation)
            converged[idx] = torch.as_tensor(np.asarray(sol.converged, dtype=bool), device=dev)
            fb_status = sol.info["status"]
            fb_status = [fb_status] if isinstance(fb_status, str) else list(fb_status)
            for t, s in zip(idx.tolist(), fb_status):
                status[t] = s
        info = {
            "status": status[0] if len(status) == 1 else status,
            "tol": tol, "feas_tol": feas_tol,
            "dual_f": f64, "dual_g": g64,
            "engine": "torch",
            "compute": f"batched torch interior point on {p.device} in float64",
            "numba_fallback": n_fb,
            "numba_fallback_index": idx.tolist(),
            "hint": HINT,
        }
        atoms = exact_atoms(p, q64, f64, g64)
        return Solution(
            q=q64.to(p.dtype),
            atoms=atoms,
            info=info,
            converged=converged,
            violation=viol.to(p.dtype),
            iterations=iters,
            gap=gap.to(p.dtype),
        )
