"""The non-default methods: ``"cvx"`` (reference), ``"fastpid"`` (the paper's
Algorithm 2) and ``"analytic"`` (closed-form proxy), and the batch contract
shared by every method."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import fastpid
from fastpid import distributions as D
from textbook_atoms import TEXTBOOK

ATOMS = ("R", "U1", "U2", "S")

# FastPID has no certificate.  With enough Sinkhorn sweeps to make the
# projection exact (50 instead of the paper's 10) its atoms should agree with
# the optimum to 1e-3 bits on small histograms; the paper's own accuracy is of
# that order.
FASTPID_TOL = 1e-3


def atoms(r):
    return np.array([getattr(r, k) for k in ATOMS], dtype=float)


def marginal_violation(P, q):
    """Max |q(x1,y) - p(x1,y)|, |q(x2,y) - p(x2,y)|, computed here independently."""
    p = np.asarray(P, dtype=float)
    p = p / p.sum()
    return max(np.abs(q.sum(axis=1) - p.sum(axis=1)).max(), np.abs(q.sum(axis=0) - p.sum(axis=0)).max())


def reference(P):
    r = fastpid.pid(P, method="cvx", solver="CLARABEL")
    assert r.converged, r
    return r


def run_recording(P, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = fastpid.pid(P, **kw)
    warned = [w for w in caught if issubclass(w.category, fastpid.ConvergenceWarning)]
    return r, warned


# ------------------------------------------------------------------ cvx

@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_cvx_scs_agrees_with_clarabel(rng, make_hist, alpha):
    """The same program through two conic solvers, on random 2-6 valued
    histograms.  (Dirichlet(0.5) and (1) only: on Dirichlet(0.1) histograms SCS
    at its default tolerance ends "optimal_inaccurate" and takes seconds per
    solve; the exact-vs-Clarabel tests cover that regime.)"""
    for zero_frac in (0.0, 0.25):
        for _ in range(3):
            shape = tuple(int(n) for n in rng.integers(2, 7, size=3))
            P = make_hist(shape, alpha, zero_frac)
            scs = fastpid.pid(P, method="cvx")
            assert scs.converged and scs.info["status"] == "optimal", scs
            np.testing.assert_allclose(atoms(scs), atoms(reference(P)), atol=1e-6, rtol=0)
            assert scs.violation <= 1e-7
            assert scs.violation == pytest.approx(marginal_violation(P, scs.q), abs=1e-15)


def test_cvx_reports_solver_and_status(make_hist):
    r = fastpid.pid(make_hist((3, 3, 2)), method="cvx", solver="clarabel")
    assert r.info["solver"] == "CLARABEL" and r.info["status"] == "optimal"
    assert np.isnan(r.gap) and r.method == "cvx"


def test_cvx_iteration_cap_is_not_silent(make_hist):
    """A conic solve stopped after one iteration: either converged=False with a
    ConvergenceWarning carrying the status, or a SolverError naming it."""
    P = make_hist((4, 4, 3), 0.5)
    try:
        r, warned = run_recording(P, method="cvx", solver="CLARABEL", max_iter=1)
    except fastpid.SolverError as exc:
        assert "CLARABEL" in str(exc)
        return
    assert r.converged is False and warned
    assert r.info["status"] != "optimal"


# ------------------------------------------------------------------ fastpid (the paper)

SMALL = [(2, 2, 2), (3, 3, 2), (3, 2, 3), (4, 3, 3)]


@pytest.mark.parametrize("shape", SMALL, ids=lambda s: "x".join(map(str, s)))
def test_fastpid_close_to_cvx_with_enough_sinkhorn_sweeps(make_hist, shape):
    P = make_hist(shape, 1.0)
    r = fastpid.pid(P, method="fastpid", sinkhorn_iters=50)
    ref = reference(P)
    assert np.isfinite(atoms(r)).all()
    assert r.violation <= 1e-6
    assert np.abs(atoms(r) - atoms(ref)).max() <= FASTPID_TOL, (atoms(r), atoms(ref), r.iterations)


def test_fastpid_optimizes_beyond_its_analytic_start():
    """On a histogram whose analytic start is far from optimal, Algorithm 2
    must take Adam steps (not stop at the start) and get closer to the optimum."""
    P = D.noisy(D.and_(), 0.1)
    ref = reference(P)
    start = fastpid.pid(P, method="analytic")
    assert ref.S - start.S > 1e-2  # the start is not optimal
    r = fastpid.pid(P, method="fastpid", sinkhorn_iters=50)
    assert r.iterations > 1
    assert abs(r.S - ref.S) < abs(start.S - ref.S)


@pytest.mark.parametrize("shape", [(3, 3, 2), (4, 4, 3), (6, 5, 3)], ids=lambda s: "x".join(map(str, s)))
def test_fastpid_defaults_report_honest_diagnostics(make_hist, shape):
    """Paper defaults (10 sweeps): whatever the answer, the diagnostics are the
    truth about the returned q, and converged=False always warns."""
    P = make_hist(shape, 0.5, 0.2)
    r, warned = run_recording(P, method="fastpid")
    assert np.isfinite(r.violation) and r.violation >= 0
    assert r.violation == pytest.approx(marginal_violation(P, r.q), rel=1e-9, abs=1e-15)
    assert 1 <= r.iterations <= 2000
    assert np.isnan(r.gap)
    assert r.info["sinkhorn_iters"] == 10 and r.info["max_iter"] == 2000 and r.info["lr"] == 0.1
    assert bool(warned) == (not r.converged)
    if r.converged:
        assert r.violation <= r.info["feas_tol"]
    assert np.isfinite(atoms(r)).all()


def test_fastpid_max_iter_respected_and_warns_when_cut_short(make_hist):
    P = make_hist((5, 4, 3), 0.5)
    r, warned = run_recording(P, method="fastpid", max_iter=3)
    assert r.iterations <= 3
    assert bool(warned) == (not r.converged)


@pytest.mark.parametrize("init", ["uniform", "gaussian"])
def test_fastpid_other_inits_run(make_hist, init):
    P = make_hist((3, 3, 2), 1.0)
    r, warned = run_recording(P, method="fastpid", init=init, max_iter=50, seed=1)
    assert np.isfinite(atoms(r)).all() and np.isfinite(r.violation)
    assert bool(warned) == (not r.converged)


# ------------------------------------------------------------------ analytic

@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 4, 2), (5, 5, 3), (8, 8, 4)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("zero_frac", [0.0, 0.3])
def test_analytic_feasible_and_synergy_below_optimum(make_hist, shape, zero_frac):
    for alpha in (0.1, 1.0):
        P = make_hist(shape, alpha, zero_frac)
        a = fastpid.pid(P, method="analytic")
        assert a.converged and a.violation <= 1e-15
        assert a.violation == pytest.approx(marginal_violation(P, a.q), abs=1e-16)
        assert a.iterations == 0 and np.isnan(a.gap)
        e = fastpid.pid(P)  # exact: S_exact >= S* - gap and S_analytic <= S*
        assert a.S <= e.S + max(e.gap, 0.0) + 1e-12
        # identities hold for any feasible q
        assert a.R + a.U2 == pytest.approx(a.I2, abs=1e-10)
        assert a.R + a.U1 + a.U2 + a.S == pytest.approx(a.I, abs=1e-10)


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
def test_analytic_synergy_below_cvx_on_gates(name):
    P = getattr(D, name)()
    a = fastpid.pid(P, method="analytic")
    c = reference(P)
    assert a.violation <= 1e-15
    assert a.S <= c.S + 1e-6


def test_analytic_is_exact_when_start_is_optimal():
    """XOR: the conditionally independent q is already optimal."""
    r = fastpid.pid(D.xor(), method="analytic")
    assert r.S == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------ batches, for every method

METHOD_OPTS = {
    "exact": {},
    "cvx": {"solver": "CLARABEL"},
    "analytic": {},
    "fastpid": {"max_iter": 20},
}


@pytest.mark.parametrize("method", sorted(METHOD_OPTS))
def test_batch_equals_loop(make_hist, method):
    opts = METHOD_OPTS[method]
    Ps = np.stack([make_hist((3, 2, 3), 0.5, 0.2) for _ in range(6)]).reshape(2, 3, 3, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastpid.ConvergenceWarning)
        rb = fastpid.pid(Ps, method=method, **opts)
        singles = [[fastpid.pid(Ps[i, j], method=method, **opts) for j in range(3)] for i in range(2)]
    assert rb.batch_shape == (2, 3)
    for k in ATOMS + ("I", "I1", "I2", "violation", "gap", "iterations", "converged"):
        v = getattr(rb, k)
        assert isinstance(v, np.ndarray) and v.shape == (2, 3), k
    assert rb.q.shape == Ps.shape
    assert rb.method == method
    for i in range(2):
        for j in range(3):
            s = singles[i][j]
            assert isinstance(s.R, float) and isinstance(s.converged, bool)
            tol = 1e-9 if method != "exact" else max(rb.gap[i, j], 0) + max(s.gap, 0) + 1e-10
            np.testing.assert_allclose([getattr(rb, k)[i, j] for k in ATOMS], atoms(s), atol=tol, rtol=0)
            np.testing.assert_allclose([rb.I[i, j], rb.I1[i, j], rb.I2[i, j]], [s.I, s.I1, s.I2], atol=1e-12)
            assert rb.converged[i, j] == s.converged
            np.testing.assert_allclose(rb.q[i, j], s.q, atol=1e-6)


def test_batch_of_one_keeps_its_batch_shape(make_hist):
    P = make_hist((3, 3, 2))[None]
    r = fastpid.pid(P)
    assert r.batch_shape == (1,) and r.R.shape == (1,) and r.q.shape == (1, 3, 3, 2)


def test_batch_q_is_normalized_per_distribution(make_hist):
    Ps = np.stack([make_hist((3, 3, 2)) * s for s in (1.0, 10.0, 1e-3)])
    r = fastpid.pid(Ps, method="analytic")
    np.testing.assert_allclose(r.q.sum(axis=(1, 2, 3)), 1.0, atol=1e-12)


def test_batch_to_dict_is_json(make_hist):
    Ps = np.stack([make_hist((2, 2, 2)) for _ in range(3)])
    r = fastpid.pid(Ps)
    d = json.loads(json.dumps(r.to_dict()))
    assert len(d["R"]) == 3 and d["method"] == "exact"
    assert "batch_shape=(3,)" in repr(r)


def test_available_methods_and_backends():
    assert {"exact", "cvx", "fastpid", "analytic"} <= set(fastpid.available_methods())
    assert "numpy" in fastpid.backend_names()
    r = fastpid.pid(D.xor(), backend="numpy")
    assert r.backend == "numpy"


EDGE_CASES = {
    "single-label": np.ones((3, 2, 1)),
    "single-valued-x1": np.arange(1.0, 7.0).reshape(1, 3, 2),
    "single-cell": np.pad(np.ones((1, 1, 1)), ((0, 2), (0, 2), (0, 2))),
    "unused-x1-value": np.pad(D.and_(), ((0, 1), (0, 0), (0, 0))),
    "1x1x1": np.ones((1, 1, 1)),
    "copy": D.copy(),
    "rdn": D.rdn(),
}


@pytest.mark.parametrize("method", sorted(METHOD_OPTS))
@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_never_nan_never_silent(method, case):
    r, warned = run_recording(EDGE_CASES[case], method=method, **METHOD_OPTS[method])
    assert np.isfinite(atoms(r)).all() and np.isfinite(r.violation), r
    assert np.isfinite(r.q).all() and r.q.sum() == pytest.approx(1.0, abs=1e-6)
    assert bool(warned) == (not r.converged)
