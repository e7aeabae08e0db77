"""Speed and accuracy of method="exact" against CVXPY + Clarabel, measured in one run.

    python benchmarks/exact_vs_clarabel.py [--quick] [--out results.json]

For each shape: the median wall time of ``fastpid.pid(P)`` (validation
included, after one warm-up) and of ``fastpid.pid(P, method="cvx",
solver="CLARABEL", tol=1e-8)`` on the same Dirichlet(1) histograms, the ratio,
the max atom difference, then the batched throughput of the exact solver on
1000 histograms of 20x20x6 and the fitted exponent of exact time vs n1*n2*ny.

Every solve records ``converged`` and the solver's status (JSON: ``solves``).
A histogram enters the times, ratio and differences only if both solvers
converged on it; any other is counted in ``failed`` and printed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

import fastpid
from _record import all_converged, solve, summary

SHAPES = [(8, 8, 4), (20, 20, 6), (32, 32, 8), (64, 64, 10)]


def timed(fn, repeat):
    ts, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes and batch only")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    shapes = SHAPES[:2] if args.quick else SHAPES
    n_batch = 50 if args.quick else 1000
    rng = np.random.default_rng(args.seed)
    solve(rng.dirichlet(np.ones(8 * 8 * 4)).reshape(8, 8, 4))  # JIT warm-up
    rows, records = [], []
    for shape in shapes:
        n_hist = 3 if shape[0] < 64 else 1
        ex_t, cl_t, diffs, its, failed = [], [], [], [], []
        for i in range(n_hist):
            P = rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
            te, (re, rec_e) = timed(lambda: solve(P), 3)
            tc, (rc, rec_c) = timed(lambda: solve(P, method="cvx", solver="CLARABEL", tol=1e-8),
                                    1 if shape[0] >= 32 else 3)
            records.append(dict(shape=list(shape), histogram=i, exact=rec_e, clarabel=rec_c,
                                exact_s=te, clarabel_s=tc))
            if not (all_converged(rec_e) and all_converged(rec_c)):
                failed.append(dict(histogram=i, exact=rec_e["status"][0], clarabel=rec_c["status"][0]))
                print(f"{'x'.join(map(str, shape)):>9}  histogram {i}: not timed, a solve failed "
                      f"(exact: {rec_e['status'][0]}, clarabel: {rec_c['status'][0]})", flush=True)
                continue
            ex_t.append(te)
            cl_t.append(tc)
            its.append(re.iterations)
            diffs.append(max(abs(getattr(re, a) - getattr(rc, a)) for a in ("R", "U1", "U2", "S")))
        nan = float("nan")
        row = dict(shape="x".join(map(str, shape)), cells=int(np.prod(shape)),
                   exact_s=float(np.median(ex_t)) if ex_t else nan,
                   clarabel_s=float(np.median(cl_t)) if cl_t else nan,
                   ratio=float(np.median(cl_t) / np.median(ex_t)) if ex_t else nan,
                   max_atom_diff_bits=float(max(diffs)) if diffs else nan,
                   exact_iterations=its, timed=len(ex_t), failed=failed)
        rows.append(row)
        print(f"{row['shape']:>9}  exact {row['exact_s']*1e3:9.1f} ms  clarabel {row['clarabel_s']*1e3:9.1f} ms  "
              f"ratio {row['ratio']:6.1f}x  max|diff| {row['max_atom_diff_bits']:.1e} bits  iters {its}  "
              f"timed {len(ex_t)}/{n_hist} (both converged)", flush=True)
    ok = [r for r in rows if r["timed"]]
    cells = np.array([r["cells"] for r in ok], float)
    times = np.array([r["exact_s"] for r in ok])
    slope = float(np.polyfit(np.log(cells), np.log(times), 1)[0]) if len(ok) >= 2 else float("nan")
    print(f"exact time ~ (n1*n2*ny)^{slope:.2f} over {', '.join(r['shape'] for r in ok)}")
    B = rng.dirichlet(np.ones(20 * 20 * 6), size=n_batch).reshape(n_batch, 20, 20, 6)
    solve(B[:16])
    t = time.perf_counter()
    rb, rec_b = solve(B)
    dt = time.perf_counter() - t
    n_ok = int(sum(rec_b["converged"]))
    print(f"batched: {n_batch} x 20x20x6 in {dt:.2f} s = {n_batch/dt:.0f} solves/s "
          f"({n_ok}/{n_batch} converged; status {summary([rec_b])['status']})")
    if n_ok < n_batch:
        print(f"batched: {n_batch - n_ok} solves did not converge: the throughput above is not "
              f"{n_batch} certified solves")
    result = dict(rows=rows, exponent=slope, batch=dict(n=n_batch, seconds=dt, solves_per_s=n_batch / dt,
                                                        converged=n_ok, status=summary([rec_b])["status"]),
                  solves=records, summary=summary([r[k] for r in records for k in ("exact", "clarabel")]),
                  machine=dict(platform=platform.platform(), cpus=os.cpu_count(),
                               loadavg=os.getloadavg()), fastpid=fastpid.__version__)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
