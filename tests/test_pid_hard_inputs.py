"""A handful of each hard input family of ``benchmarks/hard_inputs.py``
(which runs a few dozen of each): the default call certifies them."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import fastpid

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import hard_inputs as H  # noqa: E402


def _certified(P):
    r = fastpid.pid(P)
    assert r.converged is True, (r.info["status"], r.gap, r.violation, r.iterations)
    assert -1e-12 <= r.gap <= 1e-7 and 0 <= r.violation <= 1e-12
    return r


@pytest.mark.parametrize("family", ["sparse_dirichlet", "diagonal_with_noise", "few_heavy_cells",
                                    "underflow_dirichlet", "underflow_many_labels"])
def test_hard_families_certify(family):
    """Subnormal masses included: Jacobi scaling of a Newton matrix whose diagonal
    is near the underflow limit overflowed (d_r d_c), and LAPACK's Cholesky
    factored the inf silently (an uncertified answer, or a LinAlgError from the
    next inverse)."""
    rng = np.random.default_rng(0)
    underflow = family.startswith("underflow")
    for P in getattr(H, family)(rng, 40 if underflow else 6):
        r = _certified(P)
        assert r.iterations <= (120 if underflow else 60), r.iterations


def test_overflowing_totals_certify():
    r = _certified(np.full((2, 2, 2), 1e308))
    np.testing.assert_allclose([r.R, r.U1, r.U2, r.S], 0.0, atol=1e-7)
