"""An independent BROJA reference for the tests: it shares nothing with fastpid.

No fastpid import.  Its own normalization, its own formulation of the
optimization problem and its own information terms computed from q:

    Delta_P = {q >= 0 : q(x1, y) = p(x1, y), q(x2, y) = p(x2, y)}
    q*      = argmax_{q in Delta_P} H_q(Y | X1, X2)

written as one CVXPY program over all n1*n2*ny cells (a matrix Q whose rows are
the (x1, x2) pairs and whose columns are the labels), solved by Clarabel.  From
q* the atoms follow by their definitions (Bertschinger et al. 2014):

    U1 = I_q(X1; Y | X2),  U2 = I_q(X2; Y | X1),
    R  = I_p(X1; Y) - U1,  S = I_p(X1, X2; Y) - I_q(X1, X2; Y).
"""
from __future__ import annotations

import math

import cvxpy as cp
import numpy as np

LN2 = math.log(2.0)


def _normalize(P):
    P = np.array(P, dtype=np.float64)
    if P.ndim != 3 or np.any(P < 0) or not np.all(np.isfinite(P)):
        raise ValueError("expected a finite nonnegative 3-d array")
    total = math.fsum(P.ravel().tolist())
    if not total > 0:
        raise ValueError("expected a positive total")
    return P / total


def entropy_bits(p):
    """Shannon entropy (bits) of the entries of p (any shape), 0 log 0 = 0."""
    p = np.asarray(p, dtype=np.float64).ravel()
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)) / LN2)


def information_terms(q):
    """I(X1,X2;Y), I(X1;Y), I(X2;Y), I(X1;Y|X2), I(X2;Y|X1) of a joint q[x1,x2,y], in bits,
    by the entropy expansion (never through a divergence)."""
    h = entropy_bits
    H123 = h(q)
    H12, H13, H23 = h(q.sum(2)), h(q.sum(1)), h(q.sum(0))
    H1, H2, H3 = h(q.sum((1, 2))), h(q.sum((0, 2))), h(q.sum((0, 1)))
    return {
        "I": H12 + H3 - H123,
        "I1": H1 + H3 - H13,
        "I2": H2 + H3 - H23,
        "I1|2": H12 + H23 - H123 - H2,
        "I2|1": H12 + H13 - H123 - H1,
    }


def atoms_from_q(p, q):
    """The four BROJA atoms (bits) of p from a q in Delta_P."""
    tp, tq = information_terms(p), information_terms(q)
    U1, U2 = tq["I1|2"], tq["I2|1"]
    return {"R": tp["I1"] - U1, "U1": U1, "U2": U2, "S": tp["I"] - tq["I"]}


def marginal_residual(p, q):
    """max |q(x1,y) - p(x1,y)|, |q(x2,y) - p(x2,y)|."""
    return float(max(np.abs(q.sum(1) - p.sum(1)).max(), np.abs(q.sum(0) - p.sum(0)).max()))


def broja(P):
    """Solve the BROJA program for P[x1, x2, y]; returns (atoms, q, status)."""
    p = _normalize(P)
    n1, n2, ny = p.shape
    m = n1 * n2
    # rows of Q are the pairs (x1, x2) in C order: row = x1 * n2 + x2
    sel1 = np.kron(np.eye(n1), np.ones((1, n2)))        # (n1, m): sums over x2
    sel2 = np.kron(np.ones((1, n1)), np.eye(n2))        # (n2, m): sums over x1
    p1y, p2y = p.sum(1), p.sum(0)                       # (n1, ny), (n2, ny)
    # a cell can carry mass only where both of its marginals are positive
    allowed = (p1y[:, None, :] > 0) & (p2y[None, :, :] > 0)
    Q = cp.Variable((m, ny), nonneg=True)
    rowsum = cp.sum(Q, axis=1, keepdims=True)            # q(x1, x2)
    # -H_q(Y | X1, X2) in nats = sum q log(q / q(x1, x2)) = sum rel_entr(q, q(x1,x2))
    objective = cp.Minimize(cp.sum(cp.rel_entr(Q, rowsum @ np.ones((1, ny)))))
    cons = [sel1 @ Q == p1y, sel2 @ Q == p2y]
    forbid = ~allowed.reshape(m, ny)
    if forbid.any():
        cons.append(cp.multiply(forbid.astype(float), Q) == 0)
    prob = cp.Problem(objective, cons)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12,
               tol_ktratio=1e-10, max_iter=500)
    q = np.clip(np.asarray(Q.value, dtype=np.float64), 0.0, None).reshape(n1, n2, ny)
    q[~allowed] = 0.0
    return atoms_from_q(p, q), q, prob.status
