"""Time, Newton steps and peak memory of the exact solver at the scheduler's shapes.

    python benchmarks/scaling_shapes.py [--shapes 20x20x6,2x2x1000,...] [--repeat 3] [--seed 0] [--torch]

Each shape runs in a fresh subprocess (so its peak resident memory is its own):
one Dirichlet(1) histogram is solved once to warm up (Numba is compiled or
loaded from its cache before the clock starts), then ``--repeat`` times with
the defaults; printed are the best time, the Newton steps, whether the solve
was certified (``converged``, status), the peak resident memory above the
memory after import and warm-up on a tiny problem, and the time relative to
20x20x6 measured in the same run.  One BLAS and one Numba thread.

``--torch`` also times the torch engine (``fastpid.pid(torch.tensor(P),
engine="torch")`` on the CPU, one torch thread) in the same child, after the
memory reading: with its own choice of Newton solve (``path``: structured or
dense, the Numba kernel's flop rule) and forced onto its dense path
(``--dense-repeat`` times, default 1: the dense path is slow where the
structured one is chosen), and prints their ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

DEFAULT = "20x20x6,20x20x28,20x20x101,2x2x1000,2x2x3000,64x64x10,128x128x16"

CHILD = r"""
import json, resource, sys, time
import numpy as np
import fastpid
sys.path.insert(0, {bench!r})
from _record import solve
shape, repeat, seed = {shape!r}, {repeat}, {seed}
solve(np.random.default_rng(0).dirichlet(np.ones(8)).reshape(2, 2, 2))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
P = np.random.default_rng(seed).dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
best = float("inf")
for _ in range(repeat):
    t0 = time.perf_counter()
    res, rec = solve(P)
    best = min(best, time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = dict(time=best, steps=int(res.iterations), converged=rec["converged"][0],
           status=rec["status"][0], gap=float(res.gap), mem_mb=(peak - base) / 1024)
if {torch}:
    import torch
    from fastpid.kernels import broja_ipm_torch as tk
    torch.set_num_threads(1)
    solve(torch.tensor(np.random.default_rng(0).dirichlet(np.ones(8)).reshape(2, 2, 2)), engine="torch")
    Pt = torch.tensor(P)

    def timed(rep):
        best = float("inf")
        for _ in range(rep):
            t0 = time.perf_counter()
            res, rec = solve(Pt, engine="torch")
            best = min(best, time.perf_counter() - t0)
        return dict(time=best, steps=int(res.iterations), converged=rec["converged"][0],
                    fallback=int(res.info["numba_fallback"]))

    out["torch"] = dict(path="structured" if tk._use_structured(*shape) else "dense", **timed(repeat))
    tk._use_structured = lambda *a: False  # the torch engine's dense path
    out["torch_dense"] = timed({dense_repeat})
print(json.dumps(out))
"""


def run_shape(shape, repeat, seed, timeout, torch=False, dense_repeat=1):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    code = CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)), shape=shape, repeat=repeat, seed=seed,
                       torch=bool(torch), dense_repeat=dense_repeat)
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        raise RuntimeError(f"{shape}: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=DEFAULT, help="comma-separated n1xn2xny (20x20x6 is always measured)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per shape")
    ap.add_argument("--torch", action="store_true",
                    help="also time the torch engine, its own choice against its dense path")
    ap.add_argument("--dense-repeat", type=int, default=1, help="repeats of the torch dense path (--torch)")
    args = ap.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    if (20, 20, 6) not in shapes:
        shapes.insert(0, (20, 20, 6))
    rows = {s: run_shape(s, args.repeat, args.seed, args.timeout, args.torch, args.dense_repeat) for s in shapes}
    ref = rows[(20, 20, 6)]["time"]
    print(f"{'shape':>12s} {'time':>10s} {'x 20x20x6':>10s} {'steps':>6s} {'certified':>10s} "
          f"{'gap (bits)':>11s} {'peak MB':>8s}")
    failed = False
    for s, r in rows.items():
        name = "x".join(map(str, s))
        if r is None:
            print(f"{name:>12s} {'> %ds' % args.timeout:>10s}")
            failed = True
            continue
        cert = "yes" if r["converged"] else f"NO ({r['status']})"
        failed |= not r["converged"]
        print(f"{name:>12s} {r['time'] * 1e3:8.1f}ms {r['time'] / ref:10.1f} {r['steps']:6d} {cert:>10s} "
              f"{r['gap']:11.1e} {r['mem_mb']:8.1f}")
    if args.torch:
        print(f"\ntorch engine (CPU, 1 thread): its own choice of Newton solve vs its dense path")
        print(f"{'shape':>12s} {'path':>10s} {'time':>10s} {'steps':>6s} {'dense':>10s} {'steps':>6s} "
              f"{'dense/own':>9s} {'certified':>10s}")
        for s, r in rows.items():
            if r is None:
                continue
            t, d = r["torch"], r["torch_dense"]
            ok = all(x["converged"] and x["fallback"] == 0 for x in (t, d))
            failed |= not ok
            cert = "yes" if ok else "NO"
            print(f"{'x'.join(map(str, s)):>12s} {t['path']:>10s} {t['time'] * 1e3:8.1f}ms {t['steps']:6d} "
                  f"{d['time'] * 1e3:8.1f}ms {d['steps']:6d} {d['time'] / t['time']:9.1f} {cert:>10s}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
