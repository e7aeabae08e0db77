"""``method="exact"``: agreement with the conic references, certificate and edge cases.

Contract under test: ``converged`` means gap <= tol (bits) and violation <=
feas_tol, and the gap bounds the error of every atom of a feasible q; a solve
that is not converged says so with a ``fastpid.ConvergenceWarning``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import fastpid
from fastpid import distributions as D
from textbook_atoms import TEXTBOOK

ATOMS = ("R", "U1", "U2", "S")
EXACT_TOL = 1e-7   # bits
AGREE_CVX = 1e-6   # bits, exact vs CVXPY + Clarabel


def atoms(r):
    return np.array([getattr(r, k) for k in ATOMS], dtype=float)


def check_certified(r):
    assert r.converged is True, (r, r.info.get("status"))
    assert -1e-12 <= r.gap <= r.info["tol"] <= EXACT_TOL, r
    assert 0 <= r.violation <= r.info["feas_tol"] <= 1e-12, r
    assert np.all(np.isfinite(atoms(r))) and np.all(np.isfinite(r.q)), r
    assert np.all(atoms(r) >= -1e-9), r


def cvx_reference(P):
    """The BROJA program through CVXPY + Clarabel with tight tolerances (SCS's
    first-order accuracy is too loose for a 1e-6-bit comparison on random
    histograms with small masses).  Clarabel at 1e-9 occasionally ends
    "optimal_inaccurate" on inputs with masses near 1e-20; then 1e-8 is used
    (still accurate to ~1e-7 bits)."""
    for tol in (1e-9, 1e-8):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastpid.ConvergenceWarning)
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")  # CVXPY's own
            r = fastpid.pid(P, method="cvx", solver="CLARABEL", tol=tol)
        if r.converged:
            return r
    raise AssertionError(f"the CVXPY reference itself did not converge: {r} {r.info['status']}")


def solve_strict(P, **kw):
    """method="exact", with a ConvergenceWarning turned into a test failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastpid.ConvergenceWarning)
        return fastpid.pid(P, method="exact", **kw)


# ------------------------------------------------------------------ agreement with cvx

SHAPES = [(2, 2, 2), (2, 3, 2), (3, 3, 3), (4, 2, 3), (4, 4, 2), (5, 4, 3), (6, 6, 3), (8, 8, 4)]


@pytest.mark.parametrize("alpha", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_exact_agrees_with_cvx_on_dirichlet(make_hist, shape, alpha):
    for zero_frac in (0.0, 0.25):
        P = make_hist(shape, alpha, zero_frac)
        r = solve_strict(P)
        check_certified(r)
        ref = cvx_reference(P)
        err = np.abs(atoms(r) - atoms(ref))
        assert err.max() <= AGREE_CVX, (shape, alpha, zero_frac, atoms(r), atoms(ref))


# ------------------------------------------------------------------ the certificate

def test_gap_is_a_certificate(make_hist):
    """The reported gap bounds the distance to the optimum: a loose solve is
    within its own gap of a tight one."""
    P = make_hist((5, 4, 3), 0.5, 0.1)
    tight = solve_strict(P)
    loose = fastpid.pid(P, tol=1e-3)
    assert loose.converged and loose.gap <= 1e-3
    assert np.abs(atoms(loose) - atoms(tight)).max() <= loose.gap + tight.gap + 1e-10
    # the computed synergy never exceeds the optimum by more than round-off:
    # q's conditional entropy is at most the maximum
    assert loose.S <= tight.S + 1e-10


@pytest.mark.parametrize("tol", [1e-4, 1e-6, 1e-8])
def test_user_tolerance_is_honoured(make_hist, tol):
    P = make_hist((4, 3, 3), 1.0)
    r = solve_strict(P, tol=tol)
    assert r.converged and r.info["tol"] == tol
    assert r.gap <= tol and r.violation <= 1e-12


def test_tolerance_near_working_precision_is_honest(make_hist):
    """tol = 1e-11 bits may be out of reach in double precision: then the
    solver must say so (converged False + ConvergenceWarning), never claim it."""
    for _ in range(5):
        P = make_hist((5, 4, 3), 0.5, 0.2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = fastpid.pid(P, tol=1e-11)
        warned = any(issubclass(w.category, fastpid.ConvergenceWarning) for w in caught)
        if r.converged:
            assert r.gap <= 1e-11 and r.violation <= 1e-12 and not warned
        else:
            assert warned and r.info["status"] != "converged"
        assert np.all(np.isfinite(atoms(r)))


def test_iteration_cap_warns_and_stays_finite(make_hist):
    P = make_hist((6, 5, 3), 0.5)
    with pytest.warns(fastpid.ConvergenceWarning, match="max_iter"):
        r = fastpid.pid(P, max_iter=1)
    assert r.converged is False
    assert r.iterations <= 1
    assert np.all(np.isfinite(atoms(r))) and np.isfinite(r.violation)
    assert r.gap > 1e-7 or not np.isfinite(r.gap) or r.violation > 1e-12


@pytest.mark.parametrize("max_iter", [3, 5, 10])
def test_iteration_cap_is_a_cap(make_hist, max_iter):
    """``max_iter`` caps the Newton iterations."""
    for _ in range(10):
        P = make_hist((6, 5, 3), 0.5, 0.2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastpid.ConvergenceWarning)
            r = fastpid.pid(P, max_iter=max_iter)
        assert r.iterations <= max_iter, (r, r.info["status"])
        assert np.all(np.isfinite(atoms(r)))


def test_repeated_solves_are_deterministic(make_hist):
    P = make_hist((5, 5, 3), 0.5, 0.2)
    a, b = fastpid.pid(P), fastpid.pid(P)
    np.testing.assert_array_equal(atoms(a), atoms(b))
    np.testing.assert_array_equal(a.q, b.q)


# ------------------------------------------------------------------ edge cases

def test_zero_marginal_x1_value(make_hist):
    """An x1 value that never occurs: legal, and the atoms are those of P without it."""
    P = make_hist((4, 3, 3), 0.5)
    Pz = np.insert(P, 2, 0.0, axis=0)
    r, r0 = solve_strict(Pz), solve_strict(P)
    check_certified(r)
    assert np.abs(atoms(r) - atoms(r0)).max() <= r.gap + r0.gap + 1e-10
    assert np.all(r.q[2] == 0)


def test_label_that_never_occurs(make_hist):
    P = make_hist((3, 4, 3), 0.5)
    Pz = np.concatenate([P, np.zeros((3, 4, 2))], axis=2)
    r, r0 = solve_strict(Pz), solve_strict(P)
    check_certified(r)
    assert np.abs(atoms(r) - atoms(r0)).max() <= r.gap + r0.gap + 1e-10
    assert np.all(r.q[:, :, 3:] == 0)


@pytest.mark.parametrize("shape", [(3, 4, 1), (1, 1, 1), (5, 1, 1)])
def test_single_label_gives_zero_atoms(make_hist, shape):
    r = solve_strict(make_hist(shape))
    check_certified(r)
    np.testing.assert_allclose(atoms(r), 0.0, atol=1e-12)
    assert (r.I, r.I1, r.I2) == (pytest.approx(0, abs=1e-12),) * 3


@pytest.mark.parametrize("side", [0, 1])
def test_single_valued_source(make_hist, side):
    """A source with one value carries no information: R = 0 and its unique
    information is 0, the other source's unique information is I, S = 0."""
    shape = (1, 4, 3) if side == 0 else (4, 1, 3)
    r = solve_strict(make_hist(shape, 0.5))
    check_certified(r)
    u_single, u_other = (r.U1, r.U2) if side == 0 else (r.U2, r.U1)
    assert abs(r.R) <= EXACT_TOL and abs(u_single) <= EXACT_TOL and abs(r.S) <= EXACT_TOL
    assert u_other == pytest.approx(r.I, abs=EXACT_TOL)


def test_single_occupied_cell():
    P = np.zeros((3, 3, 3))
    P[1, 2, 0] = 5.0
    r = solve_strict(P)
    check_certified(r)
    np.testing.assert_allclose(atoms(r), 0.0, atol=1e-12)


@pytest.mark.parametrize("name", ["copy", "rdn", "and_", "or_", "unq"])
@pytest.mark.parametrize("weight", [1.0, 1e-3])
def test_boundary_optima_with_skewed_inputs(name, weight):
    """Boundary optima (q* with zeros) stay certified when the input
    distribution is skewed: reweight the X1 = 0 slice."""
    P = getattr(D, name)().copy()
    P[0] *= weight
    r = solve_strict(P)
    check_certified(r)
    ref = cvx_reference(P)
    assert np.abs(atoms(r) - atoms(ref)).max() <= AGREE_CVX


@pytest.mark.parametrize(
    "shape, base, corner",
    [((2, 2, 2), 1.0, 0.0), ((2, 2, 2), 1.0, 0.0625), ((2, 2, 2), 1.0, 2.0),
     ((3, 3, 2), 0.25, 1.0), ((2, 2, 3), 0.25, 1.0), ((3, 3, 3), 0.25, 1.0)],
    ids=["2x2x2-zero", "2x2x2-small", "2x2x2-double", "3x3x2-x4", "2x2x3-x4", "3x3x3-x4"],
)
def test_near_uniform_with_one_different_cell(shape, base, corner):
    """Uniform histograms with one cell changed: U1 = U2 = 0 at the optimum
    (a degenerate boundary optimum).  Found by the property tests."""
    P = np.full(shape, base)
    P[0, 0, 0] = corner
    r = solve_strict(P)
    check_certified(r)
    assert np.abs(atoms(r) - atoms(cvx_reference(P))).max() <= AGREE_CVX


def test_random_3x3x3_with_zero_cells():
    """A Dirichlet(1) draw with zero cells on which the default solve stalled
    (gap 2.0e-7 > tol 1e-7 bits) during development of this suite."""
    P = np.array([
        [[0.05688291422279459, 0.022325243246978016, 0.04121194012322032],
         [0.013615674861210906, 0.048242011447899275, 0.07938071168829018],
         [0.004969747938728523, 0.04017562210075656, 0.0678709402188867]],
        [[0.017916535432140748, 0.006997641492464321, 0.038804000409448765],
         [0.00806563416027335, 0.04036608891229828, 0.00681952268363383],
         [0.019663208160195157, 0.03436876755852103, 0.04777745461423883]],
        [[0.11141490178737548, 0.0, 0.0],
         [0.034006942834312374, 0.01687525079269711, 0.08859342696514133],
         [0.005862686895433098, 0.12102683745450137, 0.02676629399855988]],
    ])
    r = solve_strict(P)
    check_certified(r)
    assert np.abs(atoms(r) - atoms(cvx_reference(P))).max() <= AGREE_CVX


@pytest.mark.parametrize("eps", [1e-20, 1e-50, 1e-100])
def test_tiny_masses(eps):
    """One cell holds almost all the mass, the others eps: certified, atoms ~ 0."""
    P = np.full((2, 2, 2), eps)
    P[0, 0, 0] = 1.0
    r = solve_strict(P)
    check_certified(r)
    np.testing.assert_allclose(atoms(r), 0.0, atol=EXACT_TOL)


@pytest.mark.parametrize("cells", [(1, 8, 21, 2, 20), (20, 27, 1, 3, 8), (5, 25, 21, 2), (23, 31, 22)])
def test_few_heavy_cells_among_tiny_ones(cells):
    """Mass 1 on a few cells of a 2x4x4 histogram, 3.55e-15 on the others
    (blocks of tiny mass whose slack the linear model overestimates): certified
    in a few dozen Newton steps, not at the iteration cap."""
    P = np.full((2, 4, 4), 3.55e-15)
    P.flat[list(cells)] = 1.0
    r = solve_strict(P)
    check_certified(r)
    assert r.iterations <= 40, r.iterations


def test_few_heavy_cells_certified():
    """Found by the property tests (it used to stall near 1e-3 bits): a block
    whose optimal mass is decades above its start estimate must not jam the
    path.  Certified by the default call in a few dozen Newton steps."""
    P = np.full((2, 3, 3), 3.55271368e-15)
    P[0, 0, 0] = P[0, 1, 0] = P[0, 1, 2] = 1.0
    P[0, 0, 1] = 2.44140625e-04
    r = solve_strict(P)
    check_certified(r)
    assert r.iterations <= 40, r.iterations


def test_four_heavy_cells_certified():
    """Found by the property tests (it used to stop near 2e-7 bits with tol
    1e-7): certified by the default call in a few dozen Newton steps."""
    P = np.full((3, 3, 2), 3.55271368e-15)
    P[0, 0, 0] = P[0, 0, 1] = P[0, 1, 0] = P[1, 0, 0] = 1.0
    r = solve_strict(P)
    check_certified(r)
    assert r.iterations <= 40, r.iterations


@pytest.mark.parametrize("eps", [1e-160, 1e-200, 1e-300])
def test_extreme_dynamic_range_never_crashes(eps):
    """Masses near the bottom of double precision (valid finite input): no
    exception and no NaN; if the solve cannot be certified it must say so."""
    P = np.full((2, 2, 2), eps)
    P[0, 0, 0] = 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = fastpid.pid(P)
    assert np.all(np.isfinite(atoms(r))) and np.all(np.isfinite(r.q))
    np.testing.assert_allclose(atoms(r), 0.0, atol=EXACT_TOL)
    warned = any(issubclass(w.category, fastpid.ConvergenceWarning) for w in caught)
    assert r.converged != warned
    if r.converged:
        check_certified(r)


def test_counts_from_samples_near_deterministic_gate(rng):
    """A realistic sampled AND gate with a few label flips (so some cells hold
    a handful of counts and some none) is certified and matches the
    independent reference on the same empirical histogram."""
    import broja_reference as br

    x1 = rng.integers(0, 2, 4000)
    x2 = rng.integers(0, 2, 4000)
    y = (x1 & x2) ^ (rng.random(4000) < 0.001)
    P, _ = fastpid.joint_histogram(x1, x2, y)
    assert 0 < np.count_nonzero(P < 5) < P.size  # near-deterministic, not exactly the gate
    r = solve_strict(P)
    check_certified(r)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")  # CVXPY's own
        ref, _, _ = br.broja(P)
    for k in ATOMS:
        assert getattr(r, k) == pytest.approx(ref[k], abs=1e-6), k


# ------------------------------------------------------------------ batches

def test_batch_equals_loop_serial_and_parallel(make_hist):
    """Small batches take the serial kernel, large ones the parallel one:
    both must equal the single solves."""
    for B in (3, 12):
        Ps = np.stack([make_hist((4, 3, 3), 0.5, 0.2) for _ in range(B)])
        rb = fastpid.pid(Ps)
        assert rb.batch_shape == (B,)
        assert rb.R.shape == (B,) and rb.q.shape == Ps.shape and rb.converged.shape == (B,)
        assert rb.converged.all()
        for i in range(B):
            ri = fastpid.pid(Ps[i])
            np.testing.assert_allclose(
                [rb.R[i], rb.U1[i], rb.U2[i], rb.S[i]], atoms(ri), atol=rb.gap[i] + ri.gap + 1e-10
            )
            np.testing.assert_allclose([rb.I[i], rb.I1[i], rb.I2[i]], [ri.I, ri.I1, ri.I2], atol=1e-12)


def test_batch_with_degenerate_members(make_hist):
    """Degenerate members of a batch (single label, a gate, an empty x1 value)
    do not disturb the others."""
    good = make_hist((2, 3, 2), 1.0)
    single_label = np.zeros((2, 3, 2))
    single_label[:, :, 1] = make_hist((2, 3, 1), 1.0)[:, :, 0]
    gate = np.zeros((2, 3, 2))
    gate[:, :2, :] = D.and_()
    Ps = np.stack([good, single_label, gate, good * 9])
    r = fastpid.pid(Ps)
    assert r.converged.all()
    np.testing.assert_allclose([r.R[1], r.U1[1], r.U2[1], r.S[1]], 0.0, atol=1e-12)
    np.testing.assert_allclose([r.R[2], r.U1[2], r.U2[2], r.S[2]],
                               [TEXTBOOK["and_"][k] for k in ATOMS], atol=EXACT_TOL)
    np.testing.assert_allclose([r.R[3], r.U1[3], r.U2[3], r.S[3]],
                               [r.R[0], r.U1[0], r.U2[0], r.S[0]], atol=2 * EXACT_TOL)


def test_nbit_xor_entropy_scale():
    """Sanity of units: bits, not nats (S of the 2-bit XOR is 2, not 2 ln 2)."""
    r = fastpid.pid(D.nbit_xor(2))
    assert r.S == pytest.approx(2.0, abs=EXACT_TOL)
    assert r.S != pytest.approx(2 * math.log(2), abs=1e-3)


# ------------------------------------------------------------------ an independent reference

@pytest.mark.parametrize("seed", range(12))
def test_exact_agrees_with_an_independent_reference(seed):
    """``tests/broja_reference.py`` shares nothing with fastpid (its own
    normalization, formulation and information terms).  On random histograms
    the certified atoms sit within their gap of the reference's; the returned q
    is feasible and gives the reported atoms when recomputed by the reference's
    own code."""
    import broja_reference as br

    rng = np.random.default_rng(1000 + seed)
    shape = tuple(int(n) for n in rng.integers(2, 6, 3))
    P = rng.dirichlet(np.full(int(np.prod(shape)), (0.3, 1.0, 3.0)[seed % 3])).reshape(shape) * 17.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")  # CVXPY's own
        ref, q_ref, status = br.broja(P)
    p = P / P.sum()
    assert status in ("optimal", "optimal_inaccurate") and br.marginal_residual(p, q_ref) <= 1e-10, status
    r = solve_strict(P)
    check_certified(r)
    assert br.marginal_residual(p, r.q) <= 1e-12
    own = br.atoms_from_q(p, r.q)
    for k in ATOMS:
        assert getattr(r, k) == pytest.approx(own[k], abs=1e-12), k
        assert getattr(r, k) == pytest.approx(ref[k], abs=r.gap + 1e-8), (k, getattr(r, k), ref[k])


# ------------------------------------------------------------------ structured Newton solve

def _dense_newton_matrix(nb_mod, mask, s, c, pi, ridx, na):
    M = np.zeros((na, na))
    nb_mod._assemble(mask, s, c, pi, ridx, M)
    return np.tril(M) + np.tril(M, -1).T


@pytest.mark.parametrize("slack", [0.3, 1.0, 2.5, "mixed", "below1"])
@pytest.mark.parametrize("shape", [(2, 2, 7), (3, 4, 5), (5, 2, 9)])
def test_structured_solve_matches_dense(shape, slack):
    """The per-label factorization with the Woodbury correction solves the
    same Newton system as the dense matrix, for blocks with c < 1 (the
    Cholesky-factored symmetric capacitance matrix, mode 2), c = 1
    (beta = 0) and c > 1 (beta < 0, an indefinite correction: the row-scaled
    inverse, mode 1)."""
    from fastpid.kernels import broja_ipm as nb_mod

    rng = np.random.default_rng(sum(shape))
    n1, n2, ny = shape
    P = rng.dirichlet(np.ones(n1 * n2 * ny)).reshape(shape)
    a, b, py, mask, ridx, na = nb_mod._support(P)
    s = rng.uniform(0.1, 2.0, (n1, n2))
    if slack == "mixed":
        c = rng.choice([0.3, 1.0, 2.5], (n1, n2))
    elif slack == "below1":   # slacks over eight decades, all < 1
        c = 10.0 ** rng.uniform(-8, -0.01, (n1, n2))
    else:
        c = np.full((n1, n2), float(slack))
    pi = rng.dirichlet(np.ones(ny), (n1, n2))
    lrow, lcnt, blist, pos1, pos2 = nb_mod._label_structure(mask, ridx)
    mode, Dinv, beta, Cinv, csc = nb_mod._factor_structured(mask, s, c, pi, lrow, lcnt, blist, pos1, pos2)
    assert mode == (2 if slack in (0.3, "below1") else 1)
    L, dsc = nb_mod._factor(np.eye(1))
    fac = (mode, L, dsc, Dinv, lrow, lcnt, blist, pos1, pos2, beta, Cinv, pi, na, csc)
    M = _dense_newton_matrix(nb_mod, mask, s, c, pi, ridx, na)
    for _ in range(3):
        rhs = rng.standard_normal(na)
        x = nb_mod._solve_structured(fac, rhs)
        np.testing.assert_allclose(M @ x, rhs, rtol=0, atol=1e-9 * np.abs(rhs).max() * max(1.0, np.abs(M).max()))


def _newton_state(nb_mod, P, rng, slack=None):
    """The active rows of P and a Newton matrix on them: the solver's own
    start, or random block masses s, slacks c (``slack``) and softmax
    weights pi."""
    n1, n2, ny = P.shape
    a, b, py, mask, ridx, na = nb_mod._support(P)
    f, g = np.zeros((n1, ny)), np.zeros((n2, ny))
    c, pi, s, w = np.zeros((n1, n2)), np.zeros(P.shape), np.zeros((n1, n2)), np.zeros((n1, n2))
    nb_mod._start(a, b, py, mask, f, g, c, pi, s, w)
    if slack is not None:
        s = rng.uniform(0.1, 2.0, (n1, n2))
        c = rng.choice(slack, (n1, n2))
        pi = rng.dirichlet(np.ones(ny), (n1, n2))
    return mask, s, c, pi, ridx, na


@pytest.mark.parametrize("slack", [None, (0.3,), (0.3, 1.0, 2.5), (1e-8, 1e-3)])
@pytest.mark.parametrize("shape", [(6, 6, 3), (20, 20, 6), (30, 12, 4), (12, 30, 4), (9, 9, 1), (3, 40, 5), (30, 1, 3),
                                   (1, 30, 3)])
def test_block_factor_is_the_dense_cholesky_factor(shape, slack):
    """The block (Schur) factor that exploits the block-diagonal leading side
    is the factor of LAPACK's dense Cholesky of the same Jacobi-scaled
    matrix (the same elimination order), to rounding, on the solver's start
    and on random states with c < 1, c = 1, c > 1 and tiny slacks; with x1
    or x2 (the larger side) leading, with empty cells (dropped rows), and
    with no trailing rows at all (one x2 value: every x2 row is a gauge row).
    It also reproduces the scaled matrix itself, and solves with it agree
    with a dense solve of the unscaled matrix."""
    from fastpid.kernels import broja_ipm as nb_mod

    rng = np.random.default_rng(sum(shape) + (0 if slack is None else len(slack)))
    P = rng.dirichlet(np.full(int(np.prod(shape)), 0.5)).reshape(shape)
    P[rng.random(shape) < 0.15] = 0.0
    P /= P.sum()
    mask, s, c, pi, ridx, na = _newton_state(nb_mod, P, rng, slack)
    n1, n2, ny = shape
    # the larger side's rows come first, source by source
    lead = slice(n1 * ny, None) if n2 > n1 else slice(0, n1 * ny)
    first = ridx[lead][ridx[lead] >= 0]
    np.testing.assert_array_equal(first, np.arange(first.size))
    bst = nb_mod._lead_blocks(ridx, n1, n2, ny)
    assert bst[-1] == first.size
    M = np.zeros((na, na))
    nb_mod._assemble(mask, s, c, pi, ridx, M)
    assert np.all(np.triu(M, 1) == 0.0)  # only the lower triangle is assembled
    Ld, dd = nb_mod._factor(M.copy())
    Lb, db = nb_mod._factor_blocks(M.copy(), bst)
    np.testing.assert_array_equal(db, dd)
    Ld, Lb = np.tril(Ld), np.tril(Lb)
    full = np.tril(M) + np.tril(M, -1).T
    scaled = full * dd[:, None] * dd[None, :]
    np.testing.assert_allclose(Lb @ Lb.T, scaled, rtol=0, atol=1e-13)  # backward stable, as LAPACK's
    # the same factor: to rounding amplified by the conditioning (slacks 1e-8 make the matrix ~1e8-conditioned)
    tol = 1e-13 if slack is None or min(slack) >= 0.3 else 1e-9
    assert np.abs(Lb - Ld).max() <= tol
    rhs = rng.standard_normal(na)
    x = nb_mod._solve_factored(Lb, db, rhs)
    np.testing.assert_allclose(full @ x, rhs, rtol=0, atol=1e-9 * np.abs(rhs).max() * max(1.0, np.abs(full).max()))


def test_block_factor_retries_a_semidefinite_matrix_like_the_dense_one():
    """A positive semi-definite Newton matrix (a label whose two rows are
    copies of each other) makes both factors add the same diagonal shifts:
    the block factor comes back finite and equal to the dense one's."""
    from fastpid.kernels import broja_ipm as nb_mod

    rng = np.random.default_rng(3)
    n1, m = 40, 5
    blocks = []
    for i in range(n1):
        v = rng.standard_normal(m)
        blocks.append(np.outer(v, v))  # rank one: semi-definite per source
    lead = n1 * m
    M = np.zeros((lead + 12, lead + 12))
    for i, B in enumerate(blocks):
        M[i * m:(i + 1) * m, i * m:(i + 1) * m] = B
    X = rng.standard_normal((12, lead))
    M[lead:, :lead] = X * 0.01
    M[lead:, lead:] = np.eye(12)
    M = np.tril(M)
    bst = np.arange(0, lead + 1, m, dtype=np.int64)
    Ld, dd = nb_mod._factor(M.copy())
    Lb, db = nb_mod._factor_blocks(M.copy(), bst)
    assert np.all(np.isfinite(Lb))
    np.testing.assert_allclose(np.tril(Lb), np.tril(Ld), rtol=0, atol=1e-8)


@pytest.mark.parametrize("shape", [(2, 2, 300), (6, 6, 40)])
def test_many_labels_take_the_structured_path(shape):
    """Shapes with many labels: the structured solve is chosen (by flop
    count) and the solve certifies."""
    from fastpid.kernels import broja_ipm as nb_mod

    P = np.random.default_rng(1).dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
    a, b, py, mask, ridx, na = nb_mod._support(P)
    lrow, lcnt, blist, pos1, pos2 = nb_mod._label_structure(mask, ridx)
    st, dense = nb_mod._structured_cost(mask, lcnt, blist.shape[0])
    assert st < 0.5 * dense
    r = solve_strict(P)
    check_certified(r)


class _GenericNumpy(type(fastpid.backend.get_backend(np.zeros(1)))):
    """The NumPy backend under another name: atoms_from_q takes its generic,
    one-entropy-at-a-time path (the code every other backend runs)."""

    name = "numpy-generic"


@pytest.mark.parametrize("seed", range(4))
def test_fast_numpy_atoms_are_bit_identical_to_the_generic_path(seed):
    """The NumPy fast path of atoms_from_q (stacked p and q, one x log x) gives
    exactly the numbers of the per-entropy reductions, sign of zero included,
    on batches, empty cells and rows long enough for NumPy's pairwise sums."""
    from fastpid.information import atoms_from_q

    rng = np.random.default_rng(seed)
    fast_nx, slow_nx = fastpid.backend.get_backend(np.zeros(1)), _GenericNumpy()
    shapes = [(1, 1, 1), (2, 2, 2), (3, 9, 10), (9, 3, 17), (20, 20, 6), (2, 2, 150), (1, 3, 300), (12, 11, 2)]
    for shape in shapes:
        for B in (1, 2, 5):
            p = rng.dirichlet(np.ones(int(np.prod(shape))), size=B).reshape((B,) + shape)
            if p[0].size > 1:  # empty cells (never a whole distribution)
                p[p < np.quantile(p, 0.3, axis=(1, 2, 3), keepdims=True)] = 0
            p = p / p.sum(axis=(1, 2, 3), keepdims=True)
            q = p * rng.uniform(0.9, 1.1, size=p.shape)
            if p[0].size > 1:
                q[q < np.quantile(q, 0.2, axis=(1, 2, 3), keepdims=True)] = 0
            q = q / q.sum(axis=(1, 2, 3), keepdims=True)
            for pp, qq in ((p, q), (p, p), (np.full_like(p, 1 / p[0].size), p)):
                fast, slow = atoms_from_q(fast_nx, pp, qq), atoms_from_q(slow_nx, pp, qq)
                for k in slow:
                    assert fast[k].tobytes() == slow[k].tobytes(), (shape, B, k, fast[k] - slow[k])
    # and through pid: the same result as before for a single small problem
    P = rng.dirichlet(np.ones(32)).reshape(4, 4, 2)
    r = fastpid.pid(P)
    from fastpid._validation import check_distribution

    ref = atoms_from_q(slow_nx, check_distribution(P, fast_nx)[0], r.q[None])
    assert all(getattr(r, k) == float(ref[k][0]) for k in ref)
