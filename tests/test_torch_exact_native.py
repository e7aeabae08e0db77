"""The native batched torch dual interior point (``method="exact", engine="torch"``).

Checked against the Numba kernel (the reference), on known PIDs, on batches
mixing very different supports, in float32, for the PID identities, for
gradients and for honest diagnostics.  The kernel itself
(:func:`fastpid.kernels.broja_ipm_torch.solve_batch`) is also tested directly,
so that a broken port cannot hide behind the Numba re-solve of uncertified
items.  CUDA variants skip without a GPU.
"""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastpid  # noqa: E402
from fastpid import ConvergenceWarning  # noqa: E402
from fastpid import distributions as D  # noqa: E402
from fastpid.information import LOG2  # noqa: E402
from fastpid.kernels import broja_ipm as nb  # noqa: E402
from fastpid.kernels import broja_ipm_torch as tk  # noqa: E402
from textbook_atoms import TEXTBOOK  # noqa: E402

KEYS = ("R", "U1", "U2", "S", "I", "I1", "I2")
AGREE_F64 = 1e-8    # bits: torch engine vs Numba, float64 (the acceptance bound)
AGREE_F32 = 1e-6    # bits: float32 input vs Numba float64 (measured <= 1.5e-7: output rounding; docs/torch.md)
GAP_TOL = 1e-9      # bits: certified gap asked of both solves in agreement tests
FEAS_TOL = 1e-12    # the default feas_tol of method="exact"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small batches: intra-op threads only add OpenMP synchronization (and spin
    badly on a shared 2-core runner); restored after the module."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _np(v):
    return v.detach().cpu().double().numpy() if hasattr(v, "detach") else np.asarray(v)


def _assert_agree(r, ref, tol):
    """Atoms agree to ``tol`` bits; where one solve was not certified to its
    target, to within the sum of the two certified gaps."""
    gaps = np.nan_to_num(_np(r.gap), nan=np.inf) + np.nan_to_num(_np(ref.gap), nan=np.inf)
    both = _np(r.converged).astype(bool) & _np(ref.converged).astype(bool)
    assert np.all(np.isfinite(gaps)), "an exact solve returned no certificate"
    bound = np.where(both, tol, np.maximum(tol, gaps + tol))
    for k in KEYS:
        d = np.abs(_np(getattr(r, k)) - _np(getattr(ref, k)))
        assert np.all(d <= bound), (k, float(d.max()))


def _pid(P, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fastpid.pid(P, **kw)


def _batch(make_hist, shape, alpha, n, zero_frac=0.2):
    return np.stack([make_hist(shape, alpha=alpha, zero_frac=zero_frac) for _ in range(n)])


def _pad(P, shape):
    out = np.zeros(shape)
    out[: P.shape[0], : P.shape[1], : P.shape[2]] = P
    return out


def _mixed_batch(make_hist):
    """Very different supports in one (4, 4, 3) batch: known gates padded with
    empty rows/labels, a dense histogram, a sparse one, a single cell, a
    deterministic Y, and one with a whole x1 row and a label missing."""
    shape = (4, 4, 3)
    rows = [_pad(D.xor(), shape), _pad(D.and_(), shape), _pad(D.rdn(), shape), _pad(D.unq(), shape)]
    rows.append(make_hist(shape, alpha=1.0))
    rows.append(make_hist(shape, alpha=0.1, zero_frac=0.6))
    single = np.zeros(shape)
    single[1, 2, 0] = 1.0
    rows.append(single)
    det = np.zeros(shape)
    det[:, :, 1] = make_hist((4, 4, 1))[:, :, 0]
    rows.append(det)
    hole = make_hist(shape, alpha=0.5)
    hole[2] = 0.0
    hole[:, :, 0] = 0.0
    rows.append(hole / hole.sum())
    return np.stack(rows)


# --------------------------------------------------------------------------- the kernel itself
@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 4, 2), (6, 5, 4), (12, 12, 5)])
def test_kernel_certifies_and_matches_numba_objective(make_hist, shape):
    """The torch kernel alone (no fallback) certifies most items, its
    certificates hold, and its optimum value matches the Numba kernel's."""
    n = 6 if shape[0] < 12 else 2
    P = np.concatenate([_batch(make_hist, shape, a, n, zero_frac=0.1) for a in (0.5, 1.0)])
    gap_tol = 1e-7 * LOG2
    q, f, g, it, gap, viol, st = (t.numpy() for t in tk.solve_batch(torch.tensor(P), gap_tol, FEAS_TOL, 200))
    ok = st == 0
    assert ok.all(), st  # the dual interior point certifies all of these itself
    assert np.all(gap[ok] <= gap_tol) and np.all(viol[ok] <= FEAS_TOL)
    # re-check every certificate with the Numba kernel's own functions
    rq, rf, rg, _, rgap, _, rst = nb.solve_batch(P, gap_tol, FEAS_TOL, 200)
    for t in np.nonzero(ok)[0]:
        a, b = P[t].sum(1), P[t].sum(0)
        mask = (a[:, None, :] > 0) & (b[None, :, :] > 0)
        assert nb._violation(q[t], a, b) == pytest.approx(viol[t], abs=1e-15)
        F0, Dv = nb._certificate(q[t], mask, a, b, f[t], g[t])
        assert F0 - Dv <= gap_tol
        if rst[t] == 0:  # both optimal to within their gaps
            F0r, _ = nb._certificate(rq[t], mask, a, b, rf[t], rg[t])
            assert abs(F0 - F0r) <= gap[t] + rgap[t] + 1e-15


def test_strided_assembly_matches_dense_formula():
    """M = A B A^T written through strided views equals A B A^T built from an
    explicit constraint matrix (identity on the inactive rows), with B the
    block-diagonal Hessian s (diag(pi) + (1/c - 1) pi pi^T) of the dual."""
    g = torch.Generator().manual_seed(0)
    for B, n1, n2, ny in [(3, 2, 3, 2), (2, 4, 3, 5), (2, 1, 6, 3)]:
        mask = torch.rand(B, n1, n2, ny, generator=g) > 0.2
        mask[0, 0, 0] = False  # an empty block contributes nothing
        blk = mask.any(-1)
        pi = torch.where(mask, torch.rand(B, n1, n2, ny, generator=g, dtype=torch.float64), 0.0)
        pi = pi / pi.sum(-1, keepdim=True).clamp(min=1e-300)
        s = torch.where(blk, torch.rand(B, n1, n2, generator=g, dtype=torch.float64), 0.0)
        c = torch.where(blk, 0.1 + 2 * torch.rand(B, n1, n2, generator=g, dtype=torch.float64), 1.0)
        act = torch.rand(B, (n1 + n2) * ny, generator=g) > 0.3
        H = tk._block_hessian(blk, s, c, pi)
        v = act.double()
        M = tk._assemble(H, v[:, : n1 * ny].reshape(B, n1, ny), v[:, n1 * ny:].reshape(B, n2, ny), act)
        # the factor: L L^T is the Jacobi-scaled matrix, L D^-1 ... = M on the active rows
        L, dsc = tk._factor(H, act)
        Ms = (L @ L.mT) / (dsc[:, :, None] * dsc[:, None, :]).where(act[:, :, None] & act[:, None, :], 1.0)
        Ms = torch.where(act[:, :, None] & act[:, None, :], Ms, M)
        assert torch.allclose(Ms, M, rtol=1e-10, atol=1e-14)
        A = np.zeros(((n1 + n2) * ny, n1 * n2 * ny))
        for i in range(n1):
            for j in range(n2):
                for k in range(ny):
                    A[i * ny + k, (i * n2 + j) * ny + k] = 1.0
                    A[n1 * ny + j * ny + k, (i * n2 + j) * ny + k] = 1.0
        for t in range(B):
            Bm = np.zeros((n1 * n2 * ny, n1 * n2 * ny))
            for i in range(n1):
                for j in range(n2):
                    if blk[t, i, j]:
                        v = pi[t, i, j].numpy()
                        sl = slice((i * n2 + j) * ny, (i * n2 + j + 1) * ny)
                        Bm[sl, sl] = float(s[t, i, j]) * (np.diag(v) + (1 / float(c[t, i, j]) - 1) * np.outer(v, v))
            ref = A @ Bm @ A.T
            a = act[t].numpy()
            ref = ref * np.outer(a, a) + np.diag(1.0 - a)
            assert np.allclose(M[t].numpy(), ref, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("shape", [(3, 2, 12), (7, 3, 4), (3, 7, 4), (6, 6, 5)])
def test_block_factor_solves_the_dense_system(shape):
    """The block (Schur) factor, built without forming M (the larger side
    leading, x1 or x2), solves the same Jacobi-scaled Newton system as the
    dense Cholesky factor, with dropped rows, empty blocks and slacks above
    and below 1; an item with an active row that no cell supports (a zero
    row: semi-definite) takes the regularized retries and stays finite."""
    g = torch.Generator().manual_seed(sum(shape))
    B, (n1, n2, ny) = 5, shape
    mask = torch.rand(B, n1, n2, ny, generator=g) > 0.15
    mask[:, 0, 0] = True  # every label's support graph connected (x1 = 0 and x2 = 0 see all of it)
    mask[:, 0, :] = True
    mask[:, :, 0] = True
    mask[0, 1, 1] = False
    blk = mask.any(-1)
    pi = torch.where(mask, torch.rand(B, n1, n2, ny, generator=g, dtype=torch.float64), 0.0)
    pi = pi / pi.sum(-1, keepdim=True).clamp(min=1e-300)
    s = torch.where(blk, torch.rand(B, n1, n2, generator=g, dtype=torch.float64), 0.0)
    c = torch.where(blk, 0.1 + 2 * torch.rand(B, n1, n2, generator=g, dtype=torch.float64), 1.0)
    has2 = mask.any(1)
    has2[:, 0] = False  # the gauge row of every label
    act = torch.cat((mask.any(2).reshape(B, -1), has2.reshape(B, -1)), 1)
    act &= torch.rand(act.shape, generator=g) > 0.1  # rows dropped at random: principal submatrices
    mask[4, 0] = False  # item 4: source x1 = 0 loses its cells, its rows stay active (zero rows)
    blk = mask.any(-1)
    pi = torch.where(mask, pi, 0.0)
    act[4, :ny] = True
    H = tk._block_hessian(blk, s, c, pi)
    Ld, dd = tk._factor(H, act)
    Lb, db = tk._factor_blocks(H, act)
    assert Lb.lead2 == (n2 > n1)
    assert torch.equal(db, dd)
    rhs = torch.randn(B, (n1 + n2) * ny, 3, generator=g, dtype=torch.float64)
    xd, xb = tk._solve(Ld, dd, rhs), tk._solve(Lb, db, rhs)
    assert bool(torch.isfinite(xb).all())
    v = act.double()
    M = tk._assemble(H, v[:, : n1 * ny].reshape(B, n1, ny), v[:, n1 * ny:].reshape(B, n2, ny), act)
    for t in range(4):
        assert torch.allclose(xb[t], xd[t], rtol=1e-9, atol=1e-9 * float(xd[t].abs().max()))
        on = act[t]
        res = M[t][on][:, on] @ xb[t][on] - rhs[t][on]
        assert float(res.abs().max()) <= 1e-9 * float(rhs.abs().max()) * max(1.0, float(M[t].abs().max()))


@pytest.mark.parametrize("shape", [(8, 6, 5), (5, 9, 4)])
def test_block_factor_path_follows_numba_and_the_dense_path(make_hist, shape, monkeypatch):
    """Shapes that take the block factor (both sides leading): the same
    iteration counts and status as the Numba kernel and as the torch dense
    factor forced in its place, certified optima within the gaps."""
    assert (shape[0] + shape[1] - 1) * shape[2] >= nb.BLOCK_MIN_ROWS
    P = np.concatenate([_batch(make_hist, shape, a, 4, zero_frac=0.2) for a in (0.3, 1.0)])
    gap_tol = 1e-9 * LOG2
    out = tk.solve_batch(torch.tensor(P), gap_tol, FEAS_TOL, 200, structured=False)
    *_, rit, rgap, rviol, rst = nb.solve_batch(P, gap_tol, FEAS_TOL, 200)
    monkeypatch.setattr(tk, "_factor_blocks", lambda H, act: (_ for _ in ()).throw(AssertionError("block path")))
    with pytest.raises(AssertionError, match="block path"):
        tk.solve_batch(torch.tensor(P[:1]), gap_tol, FEAS_TOL, 200, structured=False)
    monkeypatch.setattr(tk, "_factor_newton", tk._factor)
    dense = tk.solve_batch(torch.tensor(P), gap_tol, FEAS_TOL, 200, structured=False)
    assert bool((out[6] == 0).all()) and np.array_equal(out[6].numpy(), rst)
    assert np.array_equal(out[3].numpy(), rit) and torch.equal(out[3], dense[3])
    for t in range(len(P)):
        p = P[t]
        a, b = p.sum(1), p.sum(0)
        mask = (a[:, None, :] > 0) & (b[None, :, :] > 0)
        F0, _ = nb._certificate(out[0][t].numpy(), mask, a, b, out[1][t].numpy(), out[2][t].numpy())
        F0d, _ = nb._certificate(dense[0][t].numpy(), mask, a, b, dense[1][t].numpy(), dense[2][t].numpy())
        assert abs(F0 - F0d) <= float(out[4][t] + dense[4][t]) + 1e-15


def test_kernel_follows_numba_iterates(make_hist):
    """Same algorithm as the Numba kernel: same iteration counts and status
    on random batches (the arithmetic differs only in summation order)."""
    P = np.concatenate([_batch(make_hist, (4, 3, 3), a, 8, zero_frac=0.2) for a in (0.1, 1.0)])
    gap_tol = 1e-9 * LOG2
    *_, it, gap, viol, st = (t.numpy() for t in tk.solve_batch(torch.tensor(P), gap_tol, FEAS_TOL, 200))
    *_, rit, rgap, rviol, rst = nb.solve_batch(P, gap_tol, FEAS_TOL, 200)
    assert np.array_equal(it, rit), (it, rit)
    assert np.array_equal(st, rst)


def test_kernel_reports_failure_honestly():
    """With too few iterations nothing is certified and the status says so."""
    P = np.random.default_rng(3).random((4, 5, 4, 3))
    P /= P.sum(axis=(1, 2, 3), keepdims=True)
    q, f, g, _, gap, viol, st = (t.numpy() for t in tk.solve_batch(torch.tensor(P), 1e-12, 1e-14, 3))
    assert np.all(st == 1)
    assert np.all(gap > 1e-12)
    # what comes back is the best certified iterate, and its gap and violation
    # are those of the returned (q, f, g)
    for t in range(len(P)):
        a, b = P[t].sum(1), P[t].sum(0)
        mask = (a[:, None, :] > 0) & (b[None, :, :] > 0)
        F0, Dv = nb._certificate(q[t], mask, a, b, f[t], g[t])
        assert F0 - Dv == pytest.approx(gap[t], rel=1e-12, abs=1e-15)
        assert nb._violation(q[t], a, b) <= viol[t] + 1e-16  # (summation order)


def test_kernel_failed_line_search_certifies_current_iterate(make_hist, monkeypatch):
    """An item whose line search finds no acceptable step keeps its iterate,
    is certified once more and stops as stalled (status 2), with an honest,
    finite certificate of that iterate (here: the centred start)."""
    P = _batch(make_hist, (4, 3, 3), 1.0, 4)
    monkeypatch.setattr(tk, "_LS_GROUPS", ())  # no trial step at all
    q, f, g, it, gap, viol, st = (t.numpy() for t in tk.solve_batch(torch.tensor(P), 1e-9 * LOG2, FEAS_TOL, 200))
    assert np.all(st == 2) and np.all(it == 1)
    assert np.all(viol <= FEAS_TOL) and np.all(np.isfinite(gap)) and np.all(gap > 0)
    for t in range(len(P)):
        a, b = P[t].sum(1), P[t].sum(0)
        mask = (a[:, None, :] > 0) & (b[None, :, :] > 0)
        F0, Dv = nb._certificate(q[t], mask, a, b, f[t], g[t])
        assert F0 - Dv == pytest.approx(gap[t], rel=1e-12, abs=1e-15)


def test_kernel_empty_items_chunks_and_working_set(make_hist):
    """An all-zero item is a numerical failure (status 3, gap inf) without
    disturbing the others; solving in chunks, or each item alone, gives the
    same answers as one batch (items leave the working set independently)."""
    P = np.concatenate([_batch(make_hist, (4, 3, 3), a, 3, zero_frac=0.3) for a in (0.1, 1.0)])
    P[2] = 0.0
    Pt = torch.tensor(P)
    out = tk.solve_batch(Pt, 1e-9 * LOG2, FEAS_TOL, 200)
    st = out[6].numpy()
    assert st[2] == 3 and np.isinf(out[4][2].item()) and not out[0][2].any()
    assert np.all(np.delete(st, 2) == 0)
    for other in (tk.solve_batch(Pt, 1e-9 * LOG2, FEAS_TOL, 200, chunk=2),
                  [torch.cat(o) for o in zip(*(tk.solve_batch(Pt[i:i + 1], 1e-9 * LOG2, FEAS_TOL, 200)
                                               for i in range(len(P))))]):
        # (batched LAPACK calls may round differently; q itself need not be
        # unique, the optimal value is)
        assert torch.equal(other[6], out[6]) and torch.equal(other[3], out[3])
        assert torch.allclose(other[4], out[4], rtol=0, atol=1e-14)
        for t in np.nonzero(st == 0)[0]:
            a, b = P[t].sum(1), P[t].sum(0)
            mask = (a[:, None, :] > 0) & (b[None, :, :] > 0)
            F0 = nb._certificate(out[0][t].numpy(), mask, a, b, out[1][t].numpy(), out[2][t].numpy())[0]
            F0o = nb._certificate(other[0][t].numpy(), mask, a, b, other[1][t].numpy(), other[2][t].numpy())[0]
            assert abs(F0 - F0o) <= 1e-14


# --------------------------------------------------------------------------- through pid
AGREE_CASES = [(shape, alpha) for shape in [(2, 2, 2), (3, 4, 2), (5, 3, 4)] for alpha in (0.1, 0.5, 1.0)]
AGREE_CASES.append(((12, 12, 5), "mixed"))  # the largest shape once, alphas mixed (run time)


@pytest.mark.parametrize("shape,alpha", AGREE_CASES)
def test_engine_torch_float64_agrees_with_numba(make_hist, shape, alpha):
    if alpha == "mixed":
        P = np.concatenate([_batch(make_hist, shape, a, 1) for a in (0.1, 0.5, 1.0)])
    else:
        P = _batch(make_hist, shape, alpha, 6)
    r = _pid(torch.tensor(P), engine="torch", tol=GAP_TOL)
    assert r.info["engine"] == "torch" and r.q.dtype == torch.float64
    assert r.info["numba_fallback"] == 0, r.info["numba_fallback"]  # certified by torch itself
    ref = _pid(P, tol=GAP_TOL)
    _assert_agree(r, ref, AGREE_F64)


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
def test_canonical_gates_exact(name):
    P = torch.tensor(getattr(D, name)())
    r = fastpid.pid(P, engine="torch", tol=1e-10)
    assert bool(r.converged) and r.info["numba_fallback"] == 0  # certified by the torch solver
    for k, v in TEXTBOOK[name].items():
        assert abs(float(getattr(r, k)) - v) <= 1e-9, (k, float(getattr(r, k)), v)


@pytest.mark.parametrize("n", [2, 3])
def test_nbit_xor_and_copy(n):
    for P, known in ((D.nbit_xor(n), dict(R=0.0, U1=0.0, U2=0.0, S=n)),
                     (D.nbit_copy(n), dict(R=0.0, U1=n, U2=n, S=0.0))):
        r = fastpid.pid(torch.tensor(P), engine="torch", tol=1e-10)
        for k, v in known.items():
            assert abs(float(getattr(r, k)) - v) <= 1e-9, (k, float(getattr(r, k)), v)


def test_batch_mixing_very_different_supports(make_hist):
    P = _mixed_batch(make_hist)
    r = _pid(torch.tensor(P), engine="torch", tol=GAP_TOL)
    ref = _pid(P, tol=GAP_TOL)
    # certified wherever the Numba engine is, by the torch solver itself
    assert np.all(_np(r.converged) >= ref.converged)
    assert r.info["numba_fallback"] == 0
    assert np.all(_np(r.gap)[_np(r.converged).astype(bool)] <= GAP_TOL)
    _assert_agree(r, ref, AGREE_F64)
    for i, name in enumerate(("xor", "and_", "rdn", "unq")):
        for k, v in TEXTBOOK[name].items():
            assert abs(float(getattr(r, k)[i]) - v) <= 1e-8
    # each item solved alone gives the same answer as inside the batch (to
    # the tolerance, or within the certified gaps where one was not certified)
    for i in (4, 5, 8):
        ri = _pid(torch.tensor(P[i : i + 1]), engine="torch", tol=GAP_TOL)
        rb = SimpleNamespace(**{k: getattr(r, k)[i : i + 1] for k in KEYS + ("gap", "converged")})
        _assert_agree(ri, rb, AGREE_F64)


def test_float32_input(make_hist):
    P = np.concatenate([_batch(make_hist, (6, 5, 4), 0.5, 6), _batch(make_hist, (6, 5, 4), 1.0, 6, 0.0)])
    r = _pid(torch.tensor(P, dtype=torch.float32), engine="torch")
    for k in KEYS:
        assert getattr(r, k).dtype == torch.float32
    assert r.q.dtype == torch.float32 and r.gap.dtype == torch.float32
    _assert_agree(r, _pid(P), AGREE_F32)


def test_identities(make_hist):
    P = np.concatenate([_batch(make_hist, (5, 4, 3), a, 5) for a in (0.1, 1.0)])
    r = _pid(torch.tensor(P), engine="torch")
    assert torch.allclose(r.R + r.U2, r.I2, atol=1e-12, rtol=0)
    assert torch.allclose(r.R + r.U1 + r.U2 + r.S, r.I, atol=1e-12, rtol=0)
    tol = r.gap + 1e-12  # nonnegativity up to the certified gap
    for k in ("R", "U1", "U2", "S"):
        assert bool((getattr(r, k) >= -tol).all()), k


def test_diagnostics_are_honest(make_hist):
    P = np.concatenate([_batch(make_hist, (4, 4, 3), a, 4) for a in (0.1, 1.0)])
    r = _pid(torch.tensor(P), engine="torch")
    q = r.q.numpy()
    a, b = P.sum(2), P.sum(1)
    viol = np.maximum(np.abs(q.sum(2) - a).max((1, 2)), np.abs(q.sum(1) - b).max((1, 2)))
    assert np.allclose(viol, r.violation.numpy(), rtol=0, atol=1e-15)
    conv = r.converged.numpy()
    assert conv.all()
    assert np.all(r.gap.numpy() <= 1e-7) and np.all(r.violation.numpy() <= FEAS_TOL)
    # the reported gap is a true certificate: rebuild it from q and the duals
    f, g = r.info["dual_f"].numpy(), r.info["dual_g"].numpy()
    for t in range(len(P)):
        mask = (a[t][:, None, :] > 0) & (b[t][None, :, :] > 0)
        F0, Dv = nb._certificate(q[t], mask, a[t], b[t], f[t], g[t])
        assert (F0 - Dv) / LOG2 == pytest.approx(float(r.gap[t]), abs=1e-12)


def test_uncertified_items_are_resolved_or_flagged():
    """max_iter too small for both engines: converged=False and a warning,
    never a silently uncertified answer; the Numba re-solve is reported."""
    P = torch.tensor(np.random.default_rng(4).random((3, 5, 4, 3)))
    with pytest.warns(ConvergenceWarning):
        r = fastpid.pid(P, engine="torch", max_iter=2)
    assert not bool(r.converged.any())
    assert r.info["numba_fallback"] == 3 and r.info["numba_fallback_index"] == [0, 1, 2]
    assert all(s != "converged" for s in r.info["status"])


def test_engine_option_validation_and_auto():
    P = torch.rand(2, 3, 3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="engine"):
        fastpid.pid(P, engine="gpu")
    assert fastpid.pid(P).info["engine"] == "numba"  # auto on a CPU tensor
    assert fastpid.pid(P, engine="torch").info["engine"] == "torch"
    with pytest.raises(TypeError):
        fastpid.pid(P.numpy(), engine="torch")  # a NumPy-backend option it is not


def test_gradients_match_numba_engine():
    rng = np.random.default_rng(7)
    P = rng.uniform(0.5, 1.5, size=(6, 3, 4, 3))
    grads = {}
    for engine in ("torch", "numba"):
        Pt = torch.tensor(P, requires_grad=True)
        r = fastpid.pid(Pt, engine=engine, tol=1e-11)
        assert bool(r.converged.all())
        (r.S.sum() + 0.5 * r.U1.sum() - r.R.sum()).backward()
        grads[engine] = Pt.grad.clone()
    # same algorithm, same iterates: the duals (hence the gradients) agree far
    # below the solve's accuracy (measured 3.5e-15 absolute)
    assert torch.allclose(grads["torch"], grads["numba"], rtol=1e-9, atol=1e-12)


def test_directional_derivatives_engine_torch():
    """<dS/dP, v> from the torch engine's duals against central differences."""
    rng = np.random.default_rng(8)
    P0 = rng.uniform(0.5, 1.5, size=(2, 3, 3, 2))
    Pt = torch.tensor(P0, requires_grad=True)
    fastpid.pid(Pt, engine="torch", tol=1e-12).S.sum().backward()
    h = 1e-5
    for _ in range(2):
        v = rng.standard_normal(P0.shape)
        Sp = fastpid.pid(torch.tensor(P0 + h * v), engine="torch", tol=1e-12).S.sum()
        Sm = fastpid.pid(torch.tensor(P0 - h * v), engine="torch", tol=1e-12).S.sum()
        fd = float(Sp - Sm) / (2 * h)
        assert float((Pt.grad * torch.tensor(v)).sum()) == pytest.approx(fd, rel=1e-4, abs=1e-6)


# --------------------------------------------------------------------------- structured Newton solve
STRUCTURED_SHAPES = [(2, 2, 300), (3, 2, 120), (4, 4, 40)]
AGREE_STRUCT = 1e-9  # bits: torch engine (structured path) vs Numba, both certified at GAP_TOL


def _sparse_many_labels(make_hist, shape):
    """Items with many labels and the supports that stress a per-label
    factorization: zero cells, an empty label, a label on a single cell (one
    block, disconnected from every other block), a label on one x1 row only
    (a star), a label whose x1 and x2 values are used by no other label, a
    whole x1 row missing, and Y a function of X1 (p(y | x1) one-hot)."""
    n1, n2, ny = shape
    rows = [make_hist(shape, alpha=1.0), make_hist(shape, alpha=0.3, zero_frac=0.4)]
    P = make_hist(shape, alpha=0.5, zero_frac=0.2)
    P[:, :, 0] = 0.0                     # an empty label
    P[:, :, 1] = 0.0
    P[0, n2 - 1, 1] = 0.3                # a label on one cell
    P[:, :, 2] = 0.0
    P[n1 - 1, :, 2] = 0.05               # a label on one x1 row
    rows.append(P / P.sum())
    P = make_hist(shape, alpha=1.0, zero_frac=0.1)
    P[0, :, :] = 0.0                     # x1 = 0 only with label 3 ...
    P[:, 0, :] = 0.0                     # ... and x2 = 0 too: a label apart
    P[:, :, 3] = 0.0
    P[0, 0, 3] = 0.2
    if n1 > 2:
        P[n1 - 1] = 0.0                  # a whole x1 row missing
    rows.append(P / P.sum())
    det = np.zeros(shape)
    for i in range(n1):
        det[i, :, (7 * i) % ny] = make_hist((1, n2, 1))[0, :, 0] / n1
    rows.append(det / det.sum())
    return np.stack(rows)


def test_structured_rule_is_the_numba_kernels():
    """The torch engine takes the structured path exactly where the Numba
    kernel does for an item of that shape with full support (its flop rule on
    its own support data), e.g. not at 20x20x6, yes at 20x20x101, 2x2x1000."""
    for shape in [(2, 2, 2), (2, 2, 30), (3, 4, 5), (2, 2, 300), (3, 2, 120), (4, 4, 40), (8, 8, 4),
                  (6, 6, 40), (20, 20, 6), (20, 20, 28), (20, 20, 101), (2, 2, 1000), (12, 12, 5)]:
        P = np.full(shape, 1.0 / np.prod(shape))
        a, b, py, mask, ridx, na = nb._support(P)
        lrow, lcnt, blist, pos1, pos2 = nb._label_structure(mask, ridx)
        st, dense = nb._structured_cost(mask, lcnt, blist.shape[0])
        assert tk._use_structured(*shape) == (st < 0.5 * dense), shape
        assert tk._structured_cost(*shape) == pytest.approx((st, dense), rel=1e-12)
    assert not tk._use_structured(20, 20, 6) and tk._use_structured(20, 20, 101)
    with pytest.raises(TypeError, match="structured"):
        tk.solve_batch(torch.ones(1, 2, 2, 2) / 8, 1e-9, FEAS_TOL, 10, structured="yes")


@pytest.mark.parametrize("slack", [0.3, 1.0, 2.5, "mixed"])
@pytest.mark.parametrize("shape", [(2, 2, 7), (3, 4, 5), (5, 2, 9)])
def test_structured_factor_solves_the_newton_system(shape, slack):
    """Per-label inverses plus the Woodbury correction solve A B A^T x = r on
    the active rows (x = 0 on the inactive ones), for blocks with c < 1,
    c = 1 (beta = 0) and c > 1 (beta < 0, an indefinite correction), with
    empty blocks, zero cells and an empty label, for every item of a batch."""
    n1, n2, ny = shape
    g = torch.Generator().manual_seed(sum(shape))
    W = 3
    P = torch.rand(W, n1, n2, ny, generator=g, dtype=torch.float64)
    P[0, 0, 0] = 0.0                                  # an empty block
    P[1, :, :, 1] = 0.0                               # an empty label
    P[2] = torch.where(torch.rand(n1, n2, ny, generator=g) < 0.3, 0.0, P[2])
    P = P / P.sum((1, 2, 3), keepdim=True)
    a, b, py, mask, q0, act = tk._setup(P)
    blk = mask.any(-1)
    pi = torch.where(mask, torch.rand(W, n1, n2, ny, generator=g, dtype=torch.float64), 0.0)
    pi = pi / pi.sum(-1, keepdim=True).clamp(min=1e-300)
    s = torch.where(blk, 0.1 + 2 * torch.rand(W, n1, n2, generator=g, dtype=torch.float64), 0.0)
    levels = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    cc = (levels[torch.randint(0, 3, (W, n1, n2), generator=g)] if slack == "mixed"
          else torch.full((W, n1, n2), float(slack), dtype=torch.float64))
    c = torch.where(blk, cc, 1.0)
    fac = tk._factor_any(True, blk, s, c, pi, act)
    assert fac.Dinv is not None and not bool(fac.dense.any())
    H = tk._block_hessian(blk, s, c, pi)
    v = act.double()
    M = tk._assemble(H, v[:, : n1 * ny].reshape(W, n1, ny), v[:, n1 * ny:].reshape(W, n2, ny), act)
    rhs = torch.where(act[..., None], torch.randn(W, act.shape[1], 3, generator=g, dtype=torch.float64), 0.0)
    x = tk._solve_any(fac, rhs)
    assert bool((x[~act] == 0).all())
    scale = rhs.abs().amax() * max(1.0, float(M.abs().amax()))
    assert float((M @ x - rhs).abs().amax()) <= 1e-10 * scale
    xd = tk._solve_any(tk._factor_any(False, blk, s, c, pi, act), rhs[..., 0])
    assert torch.allclose(x[..., 0], xd, rtol=0, atol=1e-8 * float(xd.abs().amax()))


@pytest.mark.parametrize("shape", STRUCTURED_SHAPES)
def test_structured_path_agrees_with_numba(make_hist, shape):
    """Shapes that take the structured path: every item (zero cells, empty
    and single-cell labels, deterministic Y) is certified by the torch solver
    itself, in as many Newton steps as the Numba kernel, and its atoms agree
    with the Numba engine's to AGREE_STRUCT bits; the certificates are
    re-checked with the Numba kernel's own functions."""
    assert tk._use_structured(*shape)
    P = _sparse_many_labels(make_hist, shape)
    gap_tol = GAP_TOL * LOG2
    q, f, g, it, gap, viol, st = (t.numpy() for t in tk.solve_batch(torch.tensor(P), gap_tol, FEAS_TOL, 200))
    *_, rit, rgap, _, rst = nb.solve_batch(P, gap_tol, FEAS_TOL, 200)
    assert np.all(st == 0) and np.all(rst == 0), (st, rst)
    assert np.array_equal(it, rit), (it, rit)
    for t in range(len(P)):
        a, b = P[t].sum(1), P[t].sum(0)
        mask = (a[:, None, :] > 0) & (b[None, :, :] > 0)
        assert nb._violation(q[t], a, b) <= FEAS_TOL
        F0, Dv = nb._certificate(q[t], mask, a, b, f[t], g[t])
        assert F0 - Dv <= gap_tol
    r = _pid(torch.tensor(P), engine="torch", tol=GAP_TOL)
    assert r.info["numba_fallback"] == 0 and bool(r.converged.all())
    ref = _pid(P, tol=GAP_TOL)
    assert ref.converged.all()
    _assert_agree(r, ref, AGREE_STRUCT)


@pytest.mark.parametrize("shape", [(2, 2, 300), (4, 4, 40)])
def test_structured_and_forced_dense_torch_agree(make_hist, shape):
    """The structured and the dense factor are two ways to the same Newton
    step: same statuses and iteration counts, optimal values within the
    certified gaps, and the same certificates (checked independently)."""
    P = torch.tensor(_sparse_many_labels(make_hist, shape)[:3])
    gap_tol = GAP_TOL * LOG2
    outs = {m: tk.solve_batch(P, gap_tol, FEAS_TOL, 200, structured=m) for m in (True, False)}
    (qs, fs, gs, its, gaps, _, sts), (qd, fd, gd, itd, gapd, _, std) = outs[True], outs[False]
    assert torch.equal(sts, std) and bool((sts == 0).all())
    assert torch.equal(its, itd)
    for t in range(len(P)):
        p = P[t].numpy()
        a, b = p.sum(1), p.sum(0)
        mask = (a[:, None, :] > 0) & (b[None, :, :] > 0)
        F0s, _ = nb._certificate(qs[t].numpy(), mask, a, b, fs[t].numpy(), gs[t].numpy())
        F0d, _ = nb._certificate(qd[t].numpy(), mask, a, b, fd[t].numpy(), gd[t].numpy())
        assert abs(F0s - F0d) <= float(gaps[t] + gapd[t]) + 1e-15


def test_structured_items_falling_back_to_the_dense_factor(make_hist, monkeypatch):
    """Items whose structured factor fails (a label block not numerically
    positive definite, a singular capacitance matrix) are factored densely in
    that iteration, as in the Numba kernel, inside the same batch: forcing
    the failure on some items in some iterations changes nothing."""
    P = torch.tensor(_sparse_many_labels(make_hist, (3, 2, 120)))
    gap_tol = GAP_TOL * LOG2
    ref = tk.solve_batch(P, gap_tol, FEAS_TOL, 200)
    real = tk._factor_structured
    calls = []
    gen = torch.Generator().manual_seed(5)

    def flaky(blk, s, c, pi, act):
        ok, Dinv, Cf, bs = real(blk, s, c, pi, act)
        fail = torch.rand(ok.shape, generator=gen) < 0.5  # about half the items, different each call
        calls.append(int(fail.sum()))
        return ok & ~fail, torch.where(fail[:, None, None, None], torch.nan, Dinv), Cf, bs

    monkeypatch.setattr(tk, "_factor_structured", flaky)
    out = tk.solve_batch(P, gap_tol, FEAS_TOL, 200)
    assert sum(calls) > 0 and min(calls) < len(P)
    assert torch.equal(out[6], ref[6]) and bool((out[6] == 0).all())
    assert torch.equal(out[3], ref[3])
    assert torch.allclose(out[4], ref[4], rtol=0, atol=1e-12)
    for t in range(len(P)):
        p = P[t].numpy()
        a, b = p.sum(1), p.sum(0)
        mask = (a[:, None, :] > 0) & (b[None, :, :] > 0)
        F0, Dv = nb._certificate(out[0][t].numpy(), mask, a, b, out[1][t].numpy(), out[2][t].numpy())
        assert F0 - Dv <= gap_tol


def test_structured_batch_mixing_sparse_items(make_hist):
    """A structured-path batch (3x3x40) mixing known gates padded with empty
    rows and labels, a single cell, a dense and a very sparse histogram:
    certified by the torch solver itself, known atoms exact, agreement with
    the Numba engine, and each item alone equals the item in the batch."""
    shape = (3, 3, 40)
    assert tk._use_structured(*shape)
    rows = [_pad(D.xor(), shape), _pad(D.and_(), shape), _pad(D.rdn(), shape), _pad(D.unq(), shape)]
    single = np.zeros(shape)
    single[2, 1, 17] = 1.0
    rows += [single, make_hist(shape, alpha=1.0), make_hist(shape, alpha=0.05, zero_frac=0.7)]
    P = np.stack(rows)
    r = _pid(torch.tensor(P), engine="torch", tol=GAP_TOL)
    assert r.info["numba_fallback"] == 0 and bool(r.converged.all())
    _assert_agree(r, _pid(P, tol=GAP_TOL), AGREE_STRUCT)
    for i, name in enumerate(("xor", "and_", "rdn", "unq")):
        for k, v in TEXTBOOK[name].items():
            assert abs(float(getattr(r, k)[i]) - v) <= 1e-9
    for i in (4, 6):
        ri = _pid(torch.tensor(P[i : i + 1]), engine="torch", tol=GAP_TOL)
        rb = SimpleNamespace(**{k: getattr(r, k)[i : i + 1] for k in KEYS + ("gap", "converged")})
        _assert_agree(ri, rb, AGREE_STRUCT)


# --------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_native_agrees_with_numba(make_hist, dtype):
    P = np.concatenate([_batch(make_hist, (6, 5, 4), a, 8) for a in (0.1, 0.5, 1.0)])
    Pc = torch.tensor(P, dtype=dtype, device="cuda", requires_grad=True)
    r = _pid(Pc, tol=GAP_TOL)  # auto -> torch on CUDA
    assert r.info["engine"] == "torch"
    for k in KEYS:
        assert getattr(r, k).device.type == "cuda" and getattr(r, k).dtype == dtype
    r.S.sum().backward()
    assert Pc.grad.device.type == "cuda" and bool(torch.isfinite(Pc.grad).all())
    _assert_agree(r, _pid(P, tol=GAP_TOL), AGREE_F64 if dtype == torch.float64 else AGREE_F32)


@pytest.mark.cuda
@needs_cuda
def test_cuda_kernel_matches_cpu_kernel(make_hist):
    P = torch.tensor(_mixed_batch(make_hist))
    out_c = tk.solve_batch(P.cuda(), 1e-9 * LOG2, FEAS_TOL, 200)
    out_h = tk.solve_batch(P, 1e-9 * LOG2, FEAS_TOL, 200)
    assert torch.equal(out_c[6].cpu(), out_h[6])
    assert torch.allclose(out_c[0].cpu(), out_h[0], atol=1e-9, rtol=0)


@pytest.mark.cuda
@needs_cuda
def test_cuda_gates_and_gradients_match_numba_engine():
    rng = np.random.default_rng(9)
    P = rng.uniform(0.5, 1.5, size=(6, 3, 4, 3))
    Pc = torch.tensor(P, device="cuda", requires_grad=True)
    r = fastpid.pid(Pc, tol=1e-11)
    r.S.sum().backward()
    Ph = torch.tensor(P, requires_grad=True)
    fastpid.pid(Ph, engine="numba", tol=1e-11).S.sum().backward()
    assert torch.allclose(Pc.grad.cpu(), Ph.grad, rtol=1e-6, atol=1e-8)
    x = fastpid.pid(torch.tensor(D.xor(), device="cuda"), tol=1e-10)
    assert abs(float(x.S) - 1.0) <= 1e-9


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("shape", [(2, 2, 300), (4, 4, 40)])
def test_cuda_structured_path_matches_cpu(make_hist, shape):
    """The structured path on CUDA: same statuses and iteration counts as on
    the CPU, and the same certified optimum."""
    P = torch.tensor(_sparse_many_labels(make_hist, shape))
    out_c = tk.solve_batch(P.cuda(), GAP_TOL * LOG2, FEAS_TOL, 200)
    out_h = tk.solve_batch(P, GAP_TOL * LOG2, FEAS_TOL, 200)
    assert torch.equal(out_c[6].cpu(), out_h[6]) and bool((out_h[6] == 0).all())
    assert torch.equal(out_c[3].cpu(), out_h[3])
    r = _pid(P.cuda(), tol=GAP_TOL)
    assert r.info["engine"] == "torch" and r.info["numba_fallback"] == 0
    _assert_agree(r, _pid(P.numpy(), tol=GAP_TOL), AGREE_STRUCT)
