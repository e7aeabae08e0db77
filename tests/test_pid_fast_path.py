"""``pid(P)`` with the defaults on one float64 C-contiguous ndarray takes a
short path (fastpid.api._pid_exact_single); it must give exactly what the
general path gives (``backend="numpy"`` forces that path): the same numbers
bit for bit, the same types, the same info, the same warnings."""
from __future__ import annotations

import warnings
from dataclasses import fields

import numpy as np
import pytest

import fastpid
import fastpid.api as api
from fastpid.result import PIDResult


def _same(a, b):
    if isinstance(a, np.ndarray):
        return (type(b) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape
                and np.array_equal(a, b, equal_nan=True))
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and a != a:
        return type(b) is float and b != b
    return type(a) is type(b) and a == b


def _both(P, **kw):
    out = []
    for backend in (None, "numpy"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = fastpid.pid(P, backend=backend, **kw)
        out.append((r, [(w.category, str(w.message), w.filename) for w in caught]))
    return out


@pytest.mark.parametrize("shape", [(2, 2, 2), (4, 4, 3), (8, 8, 4), (3, 5, 7), (2, 9, 2), (9, 2, 2),
                                   (2, 2, 9), (13, 11, 9), (20, 20, 6), (2, 3, 30)])
def test_short_path_equals_general_path_bit_for_bit(shape):
    rng = np.random.default_rng(sum(shape))
    for t in range(6):
        P = rng.dirichlet(np.full(int(np.prod(shape)), (0.05, 1.0, 10.0)[t % 3])).reshape(shape)
        P = P * (1.0, 1e3, 1e-300, 1e300, 7.0, 1.0)[t]
        if t % 2 == 0:
            P[rng.random(shape) < 0.4] = 0.0
        if t == 5:
            P = np.round(P / P.max() * 20)
        if not P.any():
            continue
        (fast, wf), (gen, wg) = _both(P)
        assert wf == wg
        for f in fields(PIDResult):
            assert _same(getattr(gen, f.name), getattr(fast, f.name)), (shape, t, f.name)


@pytest.mark.parametrize("convert", [
    lambda P: np.round(P * 50).astype(np.int64),
    lambda P: np.round(P * 50).astype(np.uint8),
    lambda P: P.astype(np.float32),
    lambda P: np.asfortranarray(P),
    lambda P: np.repeat(P, 2, axis=2)[:, :, ::2],
    lambda P: P.astype(">f8"),
    lambda P: np.lib.stride_tricks.as_strided(P, writeable=False),  # read-only view
])
def test_short_path_converts_like_the_general_path(convert):
    P = convert(np.random.default_rng(3).dirichlet(np.ones(36)).reshape(3, 4, 3))
    (fast, wf), (gen, wg) = _both(P)
    assert wf == wg
    for f in fields(PIDResult):
        assert _same(getattr(gen, f.name), getattr(fast, f.name)), f.name


@pytest.mark.parametrize("options", [dict(tol=1e-9), dict(feas_tol=1e-10, max_iter=50), dict(max_iter=3)])
def test_short_path_with_options_equals_general_path(options):
    P = np.random.default_rng(4).dirichlet(np.ones(48)).reshape(4, 4, 3)
    (fast, wf), (gen, wg) = _both(P, **options)
    assert wf == wg
    for f in fields(PIDResult):
        assert _same(getattr(gen, f.name), getattr(fast, f.name)), f.name


@pytest.mark.parametrize("P, options, error, match", [
    (np.full((2, 2, 2), 0.1), dict(tool=1e-9), TypeError, "Unknown option"),
    (np.full((2, 2, 2), np.nan), dict(tool=1e-9), TypeError, "Unknown option"),
    (np.full((2, 2, 2), np.nan), dict(tol=-1.0), ValueError, "NaN"),
    (np.full((2, 2, 2), 0.1), dict(tol=-1.0), ValueError, "tol must be"),
    (np.full((2, 2, 2), 0.1), dict(max_iter=2.5), TypeError, "max_iter must be an integer"),
])
def test_short_path_reports_errors_in_the_general_order(P, options, error, match):
    for backend in (None, "numpy"):
        with pytest.raises(error, match=match):
            fastpid.pid(P, backend=backend, **options)


def _run(P, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = fastpid.pid(P, **kw)
    return r, [(w.category, str(w.message), w.filename) for w in caught]


def test_short_path_warns_like_the_general_path(monkeypatch):
    """A solve that stops at the iteration cap: the same warning, pointing at the caller."""
    P = np.random.default_rng(0).dirichlet(np.ones(64)).reshape(4, 4, 4)
    gen, wg = _run(P, backend="numpy", max_iter=1)
    monkeypatch.setattr(api, "_EXACT_DEFAULTS", [dict(tol=1e-7, feas_tol=1e-12, max_iter=1)])
    fast, wf = _run(P)
    assert len(wf) == 1 and wf[0][0] is fastpid.ConvergenceWarning and wf[0][2] == __file__
    assert wf == wg
    assert fast.converged is False and fast.info["status"] == "max_iter reached"
    for f in fields(PIDResult):
        assert _same(getattr(gen, f.name), getattr(fast, f.name)), f.name


@pytest.mark.parametrize("bad", [np.nan, -1.0, np.inf])
def test_short_path_leaves_bad_input_to_the_detailed_checks(bad):
    P = np.full((2, 2, 2), 0.125)
    P[1, 0, 1] = bad
    with pytest.raises(ValueError, match="index \\(1, 0, 1\\)"):
        fastpid.pid(P)
    with pytest.raises(ValueError, match="zero total mass"):
        fastpid.pid(np.zeros((2, 2, 2)))


def test_short_path_result_has_every_field_and_nothing_else():
    fast = fastpid.pid(np.full((2, 2, 2), 0.125))
    assert list(vars(fast)) == [f.name for f in fields(PIDResult)]
    with pytest.raises(AttributeError):
        fast.R = 0.0  # still frozen
    assert "PIDResult(R=" in repr(fast) and fast.batch_shape == ()
