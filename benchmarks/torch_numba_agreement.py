"""The torch engine of ``method="exact"`` against the Numba engine, item by item.

    python benchmarks/torch_numba_agreement.py [--per-config 4] [--tols 1e-7 1e-9 1e-10] [--device cpu]

Dirichlet histograms (alpha = 0.1, 0.5, 1; with and without 20 % zero cells;
shapes 2x2x2, 3x4x2, 5x3x4, 8x6x3, 12x12x5, 20x20x6; ``--per-config`` of each,
so 144 at the default 4), solved at each ``--tols`` by ``engine="torch"``
(float64 tensors on ``--device``) and by ``engine="numba"``.  Prints per
tolerance: how many items each engine certified (the torch count is of items
certified by the torch solver itself, without a Numba re-solve), on how many
items the two took the same number of Newton steps, and the largest atom
difference in bits.  Exit status 1 if any item was uncertified by either
engine or the iteration counts differ.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from _record import solve

SHAPES = [(2, 2, 2), (3, 4, 2), (5, 3, 4), (8, 6, 3), (12, 12, 5), (20, 20, 6)]
ALPHAS = (0.1, 0.5, 1.0)
ATOMS = ("R", "U1", "U2", "S")


def histograms(per_config, seed):
    rng = np.random.default_rng(seed)
    out = []
    for shape in SHAPES:
        for alpha in ALPHAS:
            for zero_frac in (0.0, 0.2):
                for _ in range(per_config):
                    P = rng.dirichlet(np.full(int(np.prod(shape)), alpha)).reshape(shape)
                    if zero_frac:
                        P = np.where(rng.random(shape) < zero_frac, 0.0, P)
                        if P.sum() == 0:
                            P.flat[0] = 1.0
                    out.append(P)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-config", type=int, default=4, help="histograms per (shape, alpha, zeros) (default 4)")
    ap.add_argument("--tols", type=float, nargs="+", default=[1e-7, 1e-9, 1e-10])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    Ps = histograms(args.per_config, args.seed)
    bad = False
    for tol in args.tols:
        n = len(Ps)
        cert_t = cert_n = same_it = fallback = 0
        worst = 0.0
        for P in Ps:  # one item per call: shapes differ
            rt, rec_t = solve(torch.tensor(P, device=args.device), engine="torch", tol=tol)
            rn, rec_n = solve(torch.tensor(P), engine="numba", tol=tol)
            fb = int(rt.info.get("numba_fallback", 0))
            fallback += fb
            cert_t += rec_t["converged"][0] and fb == 0
            cert_n += rec_n["converged"][0]
            same_it += int(rt.iterations) == int(rn.iterations)
            worst = max(worst, max(abs(float(getattr(rt, k)) - float(getattr(rn, k))) for k in ATOMS))
        print(f"tol={tol:g}: {n} histograms; certified by the torch solver itself {cert_t}/{n} "
              f"(Numba re-solves {fallback}), by Numba {cert_n}/{n}; same Newton steps {same_it}/{n}; "
              f"max |atom difference| {worst:.1e} bits", flush=True)
        bad |= cert_t < n or cert_n < n or same_it < n
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
