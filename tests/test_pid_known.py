"""Atoms of the canonical distributions against their known values.

The reference values are written out by hand in ``tests/textbook_atoms.py``
(each derived there) and in each test; noisy gates are compared with the
independent solver ``tests/broja_reference.py``.  Never the output of fastpid.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import fastpid
from fastpid import distributions as D
from textbook_atoms import AND_R, TEXTBOOK

ATOMS = ("R", "U1", "U2", "S")
GATES = sorted(TEXTBOOK)

EXACT_TOL = 1e-7   # bits: the exact solver's default certified gap
CVX_TOL = 1e-6     # bits: CVXPY at its tight default tolerances


def h2(p):
    """Binary entropy in bits."""
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def assert_atoms(r, expected, tol):
    got = {k: getattr(r, k) for k in ATOMS}
    for k, v in expected.items():
        assert abs(got[k] - v) <= tol, f"{k}: got {got[k]!r}, expected {v!r} (tol {tol}); all atoms {got}"


# ---------------------------------------------------------------- the table itself

def test_textbook_values_and_the_library_table():
    """The hand-written values meet theory (AND/OR redundancy is h(1/4) - 1/2;
    each row sums to I(X1,X2;Y) = H(Y) of its deterministic gate), and
    fastpid.distributions.KNOWN, which the benchmarks report as ground truth,
    holds the same numbers."""
    assert AND_R == pytest.approx(h2(0.25) - 0.5, abs=1e-15)
    total = {"xor": 1.0, "and_": h2(0.25), "or_": h2(0.25), "rdn": 1.0, "unq": 1.0, "copy": 2.0}
    for name, atoms in TEXTBOOK.items():
        assert sum(atoms.values()) == pytest.approx(total[name], abs=1e-12), name
    assert sorted(D.KNOWN) == sorted(TEXTBOOK)
    for name, atoms in TEXTBOOK.items():
        assert set(D.KNOWN[name]) == set(atoms)
        for k, v in atoms.items():
            assert D.KNOWN[name][k] == pytest.approx(v, abs=1e-15), (name, k)


@pytest.mark.parametrize("name", GATES)
def test_gate_tables_are_distributions(name):
    P = getattr(D, name)()
    assert P.ndim == 3 and np.all(P >= 0)
    assert P.sum() == pytest.approx(1.0, abs=1e-15)


# ---------------------------------------------------------------- exact

@pytest.mark.parametrize("name", GATES)
def test_exact_gates(name):
    r = fastpid.pid(getattr(D, name)(), method="exact")
    assert r.converged is True
    assert r.method == "exact" and r.backend == "numpy"
    # the contract: converged means gap <= tol (bits) and violation <= feas_tol
    assert -1e-12 <= r.gap <= r.info["tol"] <= EXACT_TOL
    assert r.violation <= r.info["feas_tol"] <= 1e-12
    assert_atoms(r, TEXTBOOK[name], EXACT_TOL)


def test_exact_is_the_default_method():
    r = fastpid.pid(D.xor())
    assert r.method == "exact"
    assert r.S == pytest.approx(1.0, abs=EXACT_TOL)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_exact_nbit_xor(n):
    """Y = X1 xor X2 on n-bit words: S = n bits, nothing else."""
    r = fastpid.pid(D.nbit_xor(n), method="exact")
    assert r.converged
    assert_atoms(r, dict(R=0.0, U1=0.0, U2=0.0, S=float(n)), EXACT_TOL)
    assert r.I == pytest.approx(n, abs=1e-12)
    assert r.I1 == pytest.approx(0.0, abs=1e-12) and r.I2 == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, pytest.param(3, marks=pytest.mark.slow)])
def test_exact_nbit_copy(n):
    """Y = (X1, X2) on n-bit words: U1 = U2 = n bits (optimum on the boundary).
    n = 3 (8x8x64) takes seconds: marked slow."""
    r = fastpid.pid(D.nbit_copy(n), method="exact")
    assert r.converged
    assert_atoms(r, dict(R=0.0, U1=float(n), U2=float(n), S=0.0), EXACT_TOL)


def test_nbit_variants_reduce_to_the_one_bit_gates():
    np.testing.assert_array_equal(D.nbit_xor(1), D.xor())
    np.testing.assert_array_equal(D.nbit_copy(1), D.copy())


@pytest.mark.parametrize("k", [3, 5])
def test_exact_k_valued_redundancy_and_unique(k):
    """X1 = X2 = Y uniform on k values: R = log2 k.  Y = X1 with X2
    independent (both uniform on k values): U1 = log2 k."""
    rdn = np.zeros((k, k, k))
    for v in range(k):
        rdn[v, v, v] = 1.0
    r = fastpid.pid(rdn, method="exact")
    assert r.converged
    assert_atoms(r, dict(R=math.log2(k), U1=0.0, U2=0.0, S=0.0), EXACT_TOL)

    unq = np.zeros((k, k, k))
    for x1 in range(k):
        unq[x1, :, x1] = 1.0
    r = fastpid.pid(unq, method="exact")
    assert r.converged
    assert_atoms(r, dict(R=0.0, U1=math.log2(k), U2=0.0, S=0.0), EXACT_TOL)


def test_exact_independent_label_gives_zero_atoms(rng):
    """Y independent of (X1, X2): every atom is 0."""
    P = rng.random((3, 4, 1)) * rng.random((1, 1, 3))
    r = fastpid.pid(P, method="exact")
    assert r.converged
    assert_atoms(r, dict(R=0.0, U1=0.0, U2=0.0, S=0.0), EXACT_TOL)


def test_exact_xor_with_redundant_bit():
    """Y = (X1 xor X2, W) with X1 = (A, W), X2 = (B, W): 1 bit of synergy plus
    1 bit of redundancy (the shared W), by the additivity of BROJA over
    independent components."""
    P = np.zeros((4, 4, 4))
    for a in (0, 1):
        for b in (0, 1):
            for w in (0, 1):
                P[2 * a + w, 2 * b + w, 2 * (a ^ b) + w] += 1.0
    r = fastpid.pid(P, method="exact")
    assert r.converged
    assert_atoms(r, dict(R=1.0, U1=0.0, U2=0.0, S=1.0), EXACT_TOL)


@pytest.mark.parametrize("name", GATES)
def test_exact_noisy_gates_against_an_independent_solver(name):
    """noisy(P, eps) has full support: the certified atoms match the
    independent reference on the same P to within the gap (plus 1e-8 for the
    reference's own accuracy), and for eps = 1e-6 they lie within 5e-5 bits
    of the gate's textbook atoms (continuity; the shift is O(eps log 1/eps),
    measured 1.1e-5)."""
    import broja_reference as br

    P = getattr(D, name)()
    for eps in (1e-6, 0.3):
        Pn = D.noisy(P, eps)
        r = fastpid.pid(Pn, method="exact")
        assert r.converged is True
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")  # CVXPY's own
            ref, q_ref, status = br.broja(Pn)
        assert br.marginal_residual(Pn / Pn.sum(), q_ref) <= 1e-10, status
        assert_atoms(r, ref, max(r.gap, 0.0) + 1e-8)
    assert_atoms(fastpid.pid(D.noisy(P, 1e-6), method="exact"), TEXTBOOK[name], 5e-5)


def test_noisy_mixes_with_uniform():
    P = D.xor()
    np.testing.assert_allclose(D.noisy(P, 0.0), P)
    np.testing.assert_allclose(D.noisy(P, 1.0), np.full(P.shape, 1 / P.size))
    with pytest.raises(ValueError, match="eps"):
        D.noisy(P, 1.5)
    with pytest.raises(ValueError, match="eps"):
        D.noisy(P, -0.1)


# ---------------------------------------------------------------- cvx

@pytest.mark.parametrize("name", GATES)
def test_cvx_scs_gates(name):
    """The default conic solver (SCS, tight tolerances) on the canonical gates."""
    r = fastpid.pid(getattr(D, name)(), method="cvx")
    assert r.converged
    assert r.info["solver"] == "SCS" and r.info["status"] == "optimal"
    assert_atoms(r, TEXTBOOK[name], CVX_TOL)


@pytest.mark.parametrize("name", GATES)
def test_cvx_clarabel_gates(name):
    r = fastpid.pid(getattr(D, name)(), method="cvx", solver="CLARABEL")
    assert r.converged
    assert r.info["solver"] == "CLARABEL" and r.info["status"] == "optimal"
    assert_atoms(r, TEXTBOOK[name], CVX_TOL)


@pytest.mark.parametrize("solver", ["SCS", "CLARABEL"])
def test_cvx_nbit_variants(solver):
    r = fastpid.pid(D.nbit_xor(2), method="cvx", solver=solver)
    assert_atoms(r, dict(R=0.0, U1=0.0, U2=0.0, S=2.0), CVX_TOL)
    r = fastpid.pid(D.nbit_copy(2), method="cvx", solver=solver)
    assert_atoms(r, dict(R=0.0, U1=2.0, U2=2.0, S=0.0), CVX_TOL)


# ---------------------------------------------------------------- the information terms

@pytest.mark.parametrize("name", GATES)
def test_information_terms_of_gates(name):
    """I, I1, I2 of the gates, from theory (deterministic gates: I = H(Y))."""
    expected = {
        "xor": (1.0, 0.0, 0.0),
        "and_": (h2(0.25), h2(0.25) - 0.5, h2(0.25) - 0.5),
        "or_": (h2(0.25), h2(0.25) - 0.5, h2(0.25) - 0.5),
        "rdn": (1.0, 1.0, 1.0),
        "unq": (1.0, 1.0, 0.0),
        "copy": (2.0, 1.0, 1.0),
    }[name]
    r = fastpid.pid(getattr(D, name)(), method="analytic")
    assert (r.I, r.I1, r.I2) == pytest.approx(expected, abs=1e-12)
