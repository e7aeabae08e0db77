"""The paper's FastPID against the certified optimum at 50 and 2000 iterations.

    python benchmarks/fastpid_drift.py

Three Dirichlet(1) histograms per shape (8x8x8 and 20x20x6, seed 0); the
reference is CVXPY + Clarabel; prints the MAE over (R, U1, U2, S), the mean
signed synergy error and the worst marginal violation of FastPID's q.
"""
import warnings

import numpy as np

import fastpid

ATOMS = ("R", "U1", "U2", "S")


def main():
    warnings.simplefilter("ignore", fastpid.ConvergenceWarning)
    rng = np.random.default_rng(0)
    for shape in [(8, 8, 8), (20, 20, 6)]:
        Ps = [rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape) for _ in range(3)]
        refs = [fastpid.pid(P, method="cvx", solver="CLARABEL") for P in Ps]
        exact = [fastpid.pid(P) for P in Ps]
        mae = np.mean([np.mean([abs(getattr(e, a) - getattr(r, a)) for a in ATOMS]) for e, r in zip(exact, refs)])
        print(f"{shape}: exact MAE vs Clarabel {mae:.1e} bits")
        for max_iter in (50, 2000):
            res = [fastpid.pid(P, method="fastpid", max_iter=max_iter) for P in Ps]
            mae = np.mean([np.mean([abs(getattr(e, a) - getattr(r, a)) for a in ATOMS]) for e, r in zip(res, refs)])
            ds = np.mean([e.S - r.S for e, r in zip(res, refs)])
            viol = max(e.violation for e in res)
            print(f"{shape}: fastpid max_iter={max_iter}: MAE {mae:.2e} bits, mean S - S* {ds:+.2e}, "
                  f"max violation {viol:.1e}, iterations {[e.iterations for e in res]}")


if __name__ == "__main__":
    main()
