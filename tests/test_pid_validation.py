"""Bad input gets a clear error naming the problem; the result type and the
information helpers."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import fastpid
from fastpid import distributions as D
from fastpid.result import PIDResult

METHODS = ["exact", "cvx", "fastpid", "analytic"]


# ------------------------------------------------------------------ the input array

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "bad, exc, pattern",
    [
        (np.ones((4, 4)), ValueError, r"shape \(n1, n2, ny\).*2-D.*\(4, 4\)"),
        (np.ones(5), ValueError, r"1-D.*\(5,\)"),
        (3.0, ValueError, r"0-D"),
        (np.ones((0, 2, 2)), ValueError, r"empty axis.*\(0, 2, 2\)"),
        (np.ones((2, 2, 0)), ValueError, r"empty axis.*\(2, 2, 0\)"),
        (np.ones((0, 2, 2, 2)), ValueError, r"empty axis"),
        (np.array([[[1.0, -0.5], [1, 1]], [[1, 1], [1, 1]]]), ValueError, r"negative.*-0\.5.*\(0, 0, 1\)"),
        (np.array([[[1.0, 1], [np.nan, 1]], [[1, 1], [1, 1]]]), ValueError, r"NaN.*\(0, 1, 0\)"),
        (np.array([[[1.0, 1], [1, 1]], [[1, np.inf], [1, 1]]]), ValueError, r"infinite.*\(1, 0, 1\)"),
        (np.array([[[1.0, 1], [1, 1]], [[1, -np.inf], [1, 1]]]), ValueError, r"infinite"),
        (np.zeros((2, 2, 2)), ValueError, r"zero total mass"),
        (np.ones((2, 2, 2), dtype=complex), TypeError, r"complex"),
        (np.full((2, 2, 2), "a"), TypeError, r"real numbers.*non-numeric"),
        (np.ones((2, 2, 2), dtype=object), TypeError, r"real numbers"),
        ([[[1, 2], [3, "x"]], [[1, 2], [3, 4]]], TypeError, r"real numbers"),
        ([[[1, 2], [3]], [[1, 2], [3, 4]]], TypeError, r"array-like of real numbers"),
        (np.ones((2, 2, 2), dtype=bool), TypeError, r"boolean"),
        ("abc", TypeError, r"real numbers"),
        (None, TypeError, r"real numbers"),
    ],
    ids=[
        "2-D", "1-D", "scalar", "empty-x1", "empty-y", "empty-batch", "negative", "nan", "inf",
        "-inf", "zero-mass", "complex", "strings", "object", "mixed-list", "ragged", "bool", "str", "None",
    ],
)
def test_bad_input_is_refused(method, bad, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fastpid.pid(bad, method=method)


def test_zero_mass_in_one_batch_member_is_located():
    Ps = np.ones((2, 3, 2, 2, 2))
    Ps[1, 2] = 0.0
    with pytest.raises(ValueError, match=r"zero total mass.*batch index \(1, 2\)"):
        fastpid.pid(Ps)


def test_bad_entry_in_batch_reports_full_index():
    Ps = np.ones((3, 2, 2, 2))
    Ps[2, 1, 0, 1] = -1.0
    with pytest.raises(ValueError, match=r"negative.*\(2, 1, 0, 1\)"):
        fastpid.pid(Ps)


def test_unknown_option_checked_before_the_input():
    """Fail fast: an unknown option is reported even when the input is also bad."""
    with pytest.raises(TypeError, match="bogus"):
        fastpid.pid(np.full((2, 2, 2), np.nan), bogus=1)


def test_zero_marginals_are_legal():
    P = np.zeros((3, 3, 3))
    P[:2, :2, :2] = D.and_()
    r = fastpid.pid(P)
    assert r.converged
    assert r.S == pytest.approx(0.5, abs=1e-7)


# ------------------------------------------------------------------ methods, options, backends

def test_unknown_method():
    with pytest.raises(ValueError, match=r"Unknown method 'broja'.*exact"):
        fastpid.pid(D.xor(), method="broja")


def test_method_must_be_a_string():
    with pytest.raises(TypeError, match="method must be a string"):
        fastpid.pid(D.xor(), method=None)


@pytest.mark.parametrize("method, option", [
    ("exact", "sinkhorn_iters"), ("cvx", "lr"), ("fastpid", "solver"), ("analytic", "max_iter"),
    ("exact", "maxiter"),
])
def test_unknown_option_for_method(method, option):
    with pytest.raises(TypeError, match=rf"Unknown option.*{option}.*{method!r}.*valid options"):
        fastpid.pid(D.xor(), method=method, **{option: 1})


@pytest.mark.parametrize("method", ["exact", "cvx", "fastpid"])
@pytest.mark.parametrize(
    "option, value, exc, pattern",
    [
        ("max_iter", 0, ValueError, r"max_iter must be >= 1, got 0"),
        ("max_iter", -5, ValueError, r"max_iter must be >= 1"),
        ("max_iter", 2.5, TypeError, r"max_iter must be an integer"),
        ("max_iter", True, TypeError, r"max_iter must be an integer"),
        ("max_iter", "10", TypeError, r"max_iter must be an integer"),
        ("tol", -1e-6, ValueError, r"tol must be finite and > 0, got -1e-06"),
        ("tol", 0.0, ValueError, r"tol must be finite and > 0"),
        ("tol", float("nan"), ValueError, r"tol must be finite"),
        ("tol", float("inf"), ValueError, r"tol must be finite"),
        ("tol", "small", TypeError, r"tol must be a real number"),
        ("feas_tol", -1.0, ValueError, r"feas_tol must be finite and > 0"),
    ],
)
def test_bad_option_values(method, option, value, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fastpid.pid(D.xor(), method=method, **{option: value})


@pytest.mark.parametrize(
    "option, value, exc, pattern",
    [
        ("lr", 0.0, ValueError, r"lr must be finite and > 0"),
        ("lr", -0.1, ValueError, r"lr"),
        ("sinkhorn_iters", 0, ValueError, r"sinkhorn_iters must be >= 1"),
        ("init", "zeros", ValueError, r"init must be one of .*analytic"),
    ],
)
def test_bad_fastpid_options(option, value, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fastpid.pid(D.xor(), method="fastpid", **{option: value})


def test_bad_cvx_solver():
    with pytest.raises(ValueError, match=r"solver must be one of .*SCS.*CLARABEL.*'MOSEKX'"):
        fastpid.pid(D.xor(), method="cvx", solver="mosekx")


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"Unknown backend 'jax'.*available.*numpy"):
        fastpid.pid(D.xor(), backend="jax")


def test_backend_must_be_a_string():
    with pytest.raises(TypeError, match="backend must be a string"):
        fastpid.pid(D.xor(), backend=1)


def test_positional_options_are_refused():
    with pytest.raises(TypeError):
        fastpid.pid(D.xor(), "cvx")  # method is keyword-only


# ------------------------------------------------------------------ PIDResult

def test_result_repr_and_dict():
    r = fastpid.pid(D.and_())
    text = repr(r)
    for part in ("PIDResult(", "R=0.311278", "S=0.500000", "bits", "converged=True", "method='exact'",
                 "backend='numpy'", "violation=", "gap="):
        assert part in text, (part, text)
    d = r.to_dict()
    assert "q" not in d
    back = json.loads(json.dumps(d))
    assert set(back) >= {"R", "U1", "U2", "S", "I", "I1", "I2", "converged", "violation",
                         "iterations", "gap", "method", "backend", "info"}
    assert back["S"] == pytest.approx(0.5, abs=1e-7)
    assert isinstance(back["converged"], bool) and isinstance(back["iterations"], int)
    dq = json.loads(json.dumps(r.to_dict(include_q=True)))
    np.testing.assert_allclose(np.array(dq["q"]), r.q)


@pytest.mark.parametrize("method", METHODS)
def test_result_types_and_to_dict_for_every_method(method):
    r = fastpid.pid(D.xor(), method=method, **({"max_iter": 5} if method == "fastpid" else {}))
    for k in ("R", "U1", "U2", "S", "I", "I1", "I2", "violation", "gap"):
        assert type(getattr(r, k)) is float, (k, type(getattr(r, k)))
    assert type(r.converged) is bool and type(r.iterations) is int
    assert isinstance(r.q, np.ndarray) and r.q.shape == (2, 2, 2)
    json.dumps(r.to_dict())  # NaN gaps serialise too (as NaN)
    assert r.method == method and method in repr(r)


def test_result_is_immutable():
    r = fastpid.pid(D.xor())
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.S = 0.0


def test_result_atoms_dict():
    r = fastpid.pid(D.unq())
    a = r.atoms()
    assert list(a) == ["R", "U1", "U2", "S"]
    assert a["U1"] == pytest.approx(1.0, abs=1e-7)


def test_result_repr_with_nan_gap():
    r = fastpid.pid(D.xor(), method="analytic")
    assert "gap=nan" in repr(r)


def test_pidresult_exported():
    assert fastpid.PIDResult is PIDResult
    assert isinstance(fastpid.pid(D.xor()), PIDResult)


# ------------------------------------------------------------------ information helpers

def _mi_by_hand(pxy):
    """I(X;Y) in bits of a 2-D joint table, by the textbook double sum."""
    pxy = np.asarray(pxy, float) / np.sum(pxy)
    px, py = pxy.sum(1), pxy.sum(0)
    total = 0.0
    for i in range(pxy.shape[0]):
        for j in range(pxy.shape[1]):
            if pxy[i, j] > 0:
                total += pxy[i, j] * math.log2(pxy[i, j] / (px[i] * py[j]))
    return total


def test_mutual_information_of_gates():
    mi = fastpid.mutual_information
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert mi(D.xor()) == pytest.approx(1.0, abs=1e-12)
    assert mi(D.xor(), sources="x1") == pytest.approx(0.0, abs=1e-12)
    assert mi(D.and_()) == pytest.approx(h, abs=1e-12)
    assert mi(D.and_(), sources="x2") == pytest.approx(h - 0.5, abs=1e-12)
    assert mi(D.unq(), sources="x1") == pytest.approx(1.0, abs=1e-12)
    assert mi(D.unq(), sources="x2") == pytest.approx(0.0, abs=1e-12)
    assert mi(D.copy()) == pytest.approx(2.0, abs=1e-12)


def test_mutual_information_hand_computed(rng):
    P = rng.integers(0, 9, size=(3, 4, 2)).astype(float)
    P[0, 0, 0] = 3
    assert fastpid.mutual_information(P, sources="x1") == pytest.approx(_mi_by_hand(P.sum(1)), abs=1e-12)
    assert fastpid.mutual_information(P, sources="x2") == pytest.approx(_mi_by_hand(P.sum(0)), abs=1e-12)
    assert fastpid.mutual_information(P) == pytest.approx(_mi_by_hand(P.reshape(12, 2)), abs=1e-12)
    # a 2x1x2 table worked out on paper: p = [[.4, .1], [.1, .4]] -> I = 1 - h(0.2)
    P2 = np.array([[[0.4, 0.1]], [[0.1, 0.4]]])
    expected = 1 - (-(0.2 * math.log2(0.2) + 0.8 * math.log2(0.8)))
    assert fastpid.mutual_information(P2) == pytest.approx(expected, abs=1e-12)
    assert fastpid.mutual_information(P2, sources="x2") == 0.0


def test_conditional_mutual_information():
    cmi = fastpid.conditional_mutual_information
    assert cmi(D.xor(), given="x2") == pytest.approx(1.0, abs=1e-12)
    assert cmi(D.unq(), given="x2") == pytest.approx(1.0, abs=1e-12)
    assert cmi(D.unq(), given="x1") == pytest.approx(0.0, abs=1e-12)
    assert cmi(D.rdn(), given="x1") == pytest.approx(0.0, abs=1e-12)
    # chain rule: I(X1,X2;Y) = I(X2;Y) + I(X1;Y|X2)
    P = np.arange(1, 13, dtype=float).reshape(2, 3, 2)
    assert fastpid.mutual_information(P) == pytest.approx(
        fastpid.mutual_information(P, sources="x2") + cmi(P, given="x2"), abs=1e-12)


def test_information_helpers_batch_and_validation():
    Ps = np.stack([D.xor(), D.unq(), D.rdn()])
    np.testing.assert_allclose(fastpid.mutual_information(Ps, sources="x1"), [0.0, 1.0, 1.0], atol=1e-12)
    assert fastpid.mutual_information(Ps.reshape(3, 1, 2, 2, 2)).shape == (3, 1)
    with pytest.raises(ValueError, match="sources must be one of"):
        fastpid.mutual_information(D.xor(), sources="y")
    with pytest.raises(ValueError, match="given must be"):
        fastpid.conditional_mutual_information(D.xor(), given="y")
    with pytest.raises(ValueError, match="negative"):
        fastpid.mutual_information(-D.xor())
    with pytest.raises(ValueError, match="2-D"):
        fastpid.mutual_information(np.ones((2, 2)))


def test_pid_information_terms_match_helpers(rng):
    P = rng.random((3, 4, 3))
    r = fastpid.pid(P, method="analytic")
    assert r.I == pytest.approx(fastpid.mutual_information(P), abs=1e-12)
    assert r.I1 == pytest.approx(fastpid.mutual_information(P, sources="x1"), abs=1e-12)
    assert r.I2 == pytest.approx(fastpid.mutual_information(P, sources="x2"), abs=1e-12)
