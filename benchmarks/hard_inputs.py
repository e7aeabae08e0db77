"""Does the default ``fastpid.pid(P)`` certify the hard input families?

    python benchmarks/hard_inputs.py [--n 40] [--large 3] [--seed 0]

Families (seeded, ``--n`` histograms each unless said otherwise):

* ``sparse dirichlet``: Dirichlet(alpha = 0.01) histograms of shape 10x9x5
  with about 40 % of the cells set to zero;
* ``x1 = x2 + noise``: x1 = x2 (a diagonal n x n x ny histogram, n in 2..6,
  ny in 2..5) plus uniform noise of 1e-9 on every cell and one cell set to
  1e-300;
* ``few heavy cells``: mass 1 on 1..5 cells of a 2x4x4 histogram, 3.55e-15 on
  the others;
* ``256x256x4``: ``--large`` Dirichlet(1) histograms of shape 256x256x4;
* ``underflow dirichlet``: Dirichlet(alpha = 0.003) histograms of shapes 2..7
  per axis, whose smallest masses are subnormal (down to ~1e-320);
* ``underflow, many labels``: Dirichlet(alpha = 0.005) of shapes 7x1x139 and
  4x5x80 (the structured Newton solve), masses as small;
* ``overflowing totals``: ``np.full((2, 2, 2), 1e308)`` and, with torch,
  ``torch.full((2, 2, 3), 3e38, dtype=torch.float32)``.

Each is solved once with the defaults (tol = 1e-7 bits, max_iter = 200); a
solve counts as certified when ``converged`` is true.  Prints per family the
certified count, the largest certified gap (bits), the mean and largest number
of Newton steps, and every uncertified solve with its status.  Exit status 1
if any solve was not certified.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _record import solve


def sparse_dirichlet(rng, n):
    for _ in range(n):
        P = rng.dirichlet(np.full(450, 0.01)).reshape(10, 9, 5)
        P = np.where(rng.random(P.shape) < 0.4, 0.0, P)
        if P.sum() == 0:
            P.flat[rng.integers(P.size)] = 1.0
        yield P


def diagonal_with_noise(rng, n):
    for _ in range(n):
        k, ny = int(rng.integers(2, 7)), int(rng.integers(2, 6))
        P = np.zeros((k, k, ny))
        for i in range(k):
            P[i, i] = rng.dirichlet(np.ones(ny))
        P /= P.sum()
        P += 1e-9 * rng.random(P.shape)
        P.flat[rng.integers(P.size)] = 1e-300
        yield P


def few_heavy_cells(rng, n):
    for _ in range(n):
        P = np.full((2, 4, 4), 3.55e-15)
        P.flat[rng.choice(32, size=int(rng.integers(1, 6)), replace=False)] = 1.0
        yield P


def large(rng, n):
    for _ in range(n):
        yield rng.dirichlet(np.ones(256 * 256 * 4)).reshape(256, 256, 4)


def underflow_dirichlet(rng, n):
    for _ in range(n):
        shape = tuple(int(x) for x in rng.integers(2, 8, 3))
        yield rng.dirichlet(np.full(int(np.prod(shape)), 0.003)).reshape(shape)


def underflow_many_labels(rng, n):
    for t in range(n):
        shape = (7, 1, 139) if t % 2 == 0 else (4, 5, 80)
        yield rng.dirichlet(np.full(int(np.prod(shape)), 0.005)).reshape(shape)


def overflowing():
    yield np.full((2, 2, 2), 1e308)
    try:
        import torch
    except ImportError:
        return
    yield torch.full((2, 2, 3), 3e38, dtype=torch.float32)


def families(n, n_large, seed):
    rng = np.random.default_rng(seed)
    return [("sparse dirichlet", sparse_dirichlet(rng, n)),
            ("x1 = x2 + noise", diagonal_with_noise(rng, n)),
            ("few heavy cells", few_heavy_cells(rng, n)),
            ("256x256x4", large(rng, n_large)),
            ("underflow dirichlet", underflow_dirichlet(rng, n)),
            ("underflow, many labels", underflow_many_labels(rng, n)),
            ("overflowing totals", overflowing())]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="histograms per family")
    ap.add_argument("--large", type=int, default=3, help="256x256x4 histograms")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    failures = []
    print(f"{'family':20s} {'certified':>11s} {'max gap (bits)':>15s} {'steps mean':>11s} {'max':>5s} {'time':>7s}")
    for name, gen in families(args.n, args.large, args.seed):
        t0 = time.perf_counter()
        n = ok = 0
        gaps, steps = [], []
        for P in gen:
            res, rec = solve(P)
            n += 1
            steps.append(int(res.iterations))
            if rec["converged"][0]:
                ok += 1
                gaps.append(float(res.gap))
            else:
                failures.append((name, n - 1, rec["status"][0], float(res.gap), float(res.violation),
                                 int(res.iterations)))
        if n == 0:                                   # e.g. --large 0
            print(f"{name:20s} (none requested)", flush=True)
            continue
        mg = f"{max(gaps):.1e}" if gaps else "-"
        print(f"{name:20s} {ok:5d}/{n:<5d} {mg:>15s} {np.mean(steps):11.1f} {max(steps):5d} "
              f"{time.perf_counter() - t0:6.1f}s", flush=True)
    for name, i, status, gap, viol, its in failures:
        print(f"NOT certified: {name} #{i}: status {status!r}, gap {gap:.1e} bits, violation {viol:.1e}, "
              f"{its} steps")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
