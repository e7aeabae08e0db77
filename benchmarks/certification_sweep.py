"""Does the default ``fastpid.pid(P)`` certify every input of a broad sweep?

    python benchmarks/certification_sweep.py [--random 2000] [--large 60] [--seed 0]

Inputs: ``--random`` Dirichlet histograms with 2..8 values per axis, alpha
drawn from 0.1..1 and up to half of the cells set to zero; the canonical gates
mixed with uniform noise at 1e-3, 1e-6, 1e-9 and 1e-12; n-bit XOR and COPY
(n = 1, 2, 3); single-valued sources; labels that never occur; 1e-300 masses
next to 1; and ``--large`` Dirichlet histograms with 8..32 values per axis.
Each is solved once with the defaults; a solve counts as certified when
``converged`` is true, which means gap <= 1e-7 bits and violation <= 1e-12.
Prints the counts per family with the mean and largest number of Newton
steps, the largest gap and violation, the status of every uncertified solve
and its input's description.  Exit status 1 if any solve was not certified.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fastpid import distributions as D
from _record import solve


def dirichlet(rng, shape, alpha, zero_frac):
    P = rng.dirichlet(np.full(int(np.prod(shape)), alpha)).reshape(shape)
    if zero_frac > 0:
        P = np.where(rng.random(shape) < zero_frac, 0.0, P)
        if P.sum() == 0:
            P.flat[rng.integers(P.size)] = 1.0
    return P


def inputs(n_random, n_large, seed):
    """(family, description, P) triples."""
    rng = np.random.default_rng(seed)
    for i in range(n_random):
        shape = tuple(int(v) for v in rng.integers(2, 9, 3))
        alpha, zf = float(rng.uniform(0.1, 1.0)), float(rng.uniform(0.0, 0.5))
        yield "random 2..8", f"#{i} {shape} alpha={alpha:.3f} zero_frac={zf:.2f}", dirichlet(rng, shape, alpha, zf)
    for name in ("xor", "and_", "or_", "rdn", "unq", "copy"):
        for eps in (1e-3, 1e-6, 1e-9, 1e-12):
            yield "noisy gates", f"{name} eps={eps:g}", D.noisy(getattr(D, name)(), eps)
    for n in (1, 2, 3):
        yield "n-bit xor/copy", f"xor n={n}", D.nbit_xor(n)
        yield "n-bit xor/copy", f"copy n={n}", D.nbit_copy(n)
    for side in (0, 1):
        for k in (2, 5):
            P = dirichlet(rng, (k, k, 3), 1.0, 0.0)
            P = P.sum(axis=side, keepdims=True)
            yield "single-valued source", f"x{side + 1} single-valued, {P.shape}", P
    for k in (2, 4):
        P = dirichlet(rng, (k, k, 4), 0.5, 0.0)
        P[:, :, 1] = 0.0
        yield "missing label", f"label 1 never occurs, {P.shape}", P
    for shape in ((2, 2, 2), (3, 3, 3), (5, 4, 3)):
        for tiny in (1e-300, 1e-200):
            P = dirichlet(rng, shape, 1.0, 0.0)
            P.flat[rng.integers(P.size)] = tiny
            yield "tiny masses", f"{shape} one cell {tiny:g}", P
    for i in range(n_large):
        shape = tuple(int(v) for v in rng.integers(8, 33, 3))
        alpha = float(rng.uniform(0.1, 1.0))
        yield "random 8..32", f"#{i} {shape} alpha={alpha:.3f}", dirichlet(rng, shape, alpha, 0.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=2000, help="Dirichlet histograms with 2..8 values per axis")
    ap.add_argument("--large", type=int, default=60, help="Dirichlet histograms with 8..32 values per axis")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    fam, failures = {}, []
    max_gap = max_viol = 0.0
    for family, desc, P in inputs(args.random, args.large, args.seed):
        res, rec = solve(P)
        f = fam.setdefault(family, [0, 0, []])
        f[0] += 1
        ok = rec["converged"][0]
        f[1] += ok
        f[2].append(int(res.iterations))
        if ok:
            max_gap, max_viol = max(max_gap, float(res.gap)), max(max_viol, float(res.violation))
        else:
            failures.append((family, desc, rec["status"][0], float(res.gap), float(res.violation),
                             int(res.iterations)))
    total = sum(v[0] for v in fam.values())
    cert = sum(v[1] for v in fam.values())
    steps = [k for v in fam.values() for k in v[2]]
    for family, (n, c, st) in fam.items():
        print(f"{family:22s} {c:5d}/{n:<5d} certified; Newton steps mean {np.mean(st):5.1f}, max {max(st):3d}")
    print(f"{'all':22s} {cert:5d}/{total:<5d} certified; Newton steps mean {np.mean(steps):.1f}; "
          f"largest certified gap {max_gap:.1e} bits, "
          f"largest violation {max_viol:.1e}; {time.perf_counter() - t0:.0f} s")
    for family, desc, status, gap, viol, its in failures:
        print(f"NOT certified: {family}: {desc}: status {status!r}, gap {gap:.1e} bits, violation {viol:.1e}, "
              f"{its} iterations")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
