"""Python overhead of one ``fastpid.pid`` call on small problems, measured in one run.

    python benchmarks/call_overhead.py [--shapes 2x2x2,4x4x3,8x8x4,20x20x6] [--repeat 15] [--seed 0] [--out f.json]

For each shape and a few Dirichlet(1) histograms: the wall time of
``fastpid.pid(P)`` (method "exact", the defaults: validation, normalization,
the solve, the atoms and the result object) and the time of the bare compiled
kernel ``fastpid.kernels.broja_ipm.solve_one`` on the same, already
normalized, float64 distribution with the same tolerances (what
``methods/exact.py`` calls for a single distribution).  Both after warm-up
(Numba compiled or loaded from its cache), timeit-style: ``--repeat`` rounds,
pid and kernel interleaved, each round a loop of enough calls to last about
20 ms; the per-call time of a round is its loop time divided by the calls, and
the median over rounds is printed.  overhead = pid - kernel, in microseconds
and as a fraction of the pid time.

Every call inside a timed loop keeps its result; after the loop each one is
checked: ``converged`` of every ``pid`` result (ConvergenceWarnings are
counted) and the status of every kernel return.  A histogram with any failed
solve is not timed as a success: it is reported as failed and left out of the
medians.  One BLAS, OpenMP and Numba thread (set before NumPy is imported).
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import fastpid  # noqa: E402
from fastpid._validation import check_distribution  # noqa: E402
from fastpid.backend import get_backend  # noqa: E402
from fastpid.information import LOG2  # noqa: E402
from fastpid.kernels.broja_ipm import STATUS, solve_one  # noqa: E402
from fastpid.methods import exact  # noqa: E402

DEFAULT = "2x2x2,4x4x3,8x8x4,20x20x6"
ROUND_S = 0.02  # target duration of one timed loop


def _loop(fn, n):
    """Run fn n times; return (seconds per call, the n results)."""
    out = []
    append = out.append
    t0 = time.perf_counter()
    for _ in range(n):
        append(fn())
    return (time.perf_counter() - t0) / n, out


def measure(P, repeat):
    """Median per-call times of pid(P) and of the bare kernel on the normalized P."""
    opts = exact.options()  # the defaults pid uses
    gap_tol, feas_tol, max_iter = opts["tol"] * LOG2, opts["feas_tol"], opts["max_iter"]
    pv, _ = check_distribution(P, get_backend(P))  # the normalized batch pid hands the solver
    p = np.ascontiguousarray(pv[0], dtype=np.float64)

    def call_pid():
        return fastpid.pid(P)

    def call_kernel():
        return solve_one(p, gap_tol, feas_tol, max_iter)

    for _ in range(3):  # warm-up (compiled kernels, caches, branch predictors)
        call_pid()
        call_kernel()
    t1 = time.perf_counter()
    call_pid()
    n = max(5, int(ROUND_S / max(time.perf_counter() - t1, 1e-7)))
    t_pid, t_ker = [], []
    pid_conv, ker_status, n_warn = [], [], 0
    for _ in range(repeat):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", fastpid.ConvergenceWarning)
            tp, res = _loop(call_pid, n)
        n_warn += sum(issubclass(w.category, fastpid.ConvergenceWarning) for w in caught)
        tk, outs = _loop(call_kernel, n)
        pid_conv += [bool(r.converged) for r in res]
        ker_status += [STATUS[int(o[6])] for o in outs]
        t_pid.append(tp)
        t_ker.append(tk)
    ok = all(pid_conv) and all(s == "converged" for s in ker_status) and n_warn == 0
    return dict(
        pid_s=float(np.median(t_pid)), kernel_s=float(np.median(t_ker)),
        calls_per_round=n, rounds=repeat, ok=ok,
        pid_converged=f"{sum(pid_conv)}/{len(pid_conv)}",
        kernel_status={s: ker_status.count(s) for s in sorted(set(ker_status))},
        convergence_warnings=n_warn, iterations=int(res[-1].iterations),
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=DEFAULT, help="comma-separated n1xn2xny")
    ap.add_argument("--histograms", type=int, default=3, help="Dirichlet(1) histograms per shape")
    ap.add_argument("--repeat", type=int, default=15, help="timed rounds per histogram")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    print("$ python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]))
    print(f"fastpid {fastpid.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} cpus, loadavg {os.getloadavg()[0]:.2f}")
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    rng = np.random.default_rng(args.seed)
    print(f"{'shape':>9s} {'pid':>10s} {'kernel':>10s} {'overhead':>10s} {'fraction':>9s} "
          f"{'iters':>6s}  certified (pid / kernel, every timed call)")
    rows, failed = [], 0
    for shape in shapes:
        name = "x".join(map(str, shape))
        for h in range(args.histograms):
            P = rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
            m = measure(P, args.repeat)
            m.update(shape=name, histogram=h, overhead_s=m["pid_s"] - m["kernel_s"])
            rows.append(m)
            if not m["ok"]:
                failed += 1
                print(f"{name:>9s}  histogram {h}: not timed, a solve failed (pid converged "
                      f"{m['pid_converged']}, kernel {m['kernel_status']}, "
                      f"{m['convergence_warnings']} ConvergenceWarnings)", flush=True)
                continue
            print(f"{name:>9s} {m['pid_s'] * 1e6:8.1f}us {m['kernel_s'] * 1e6:8.1f}us "
                  f"{m['overhead_s'] * 1e6:8.1f}us {m['overhead_s'] / m['pid_s']:9.2f} {m['iterations']:6d}  "
                  f"{m['pid_converged']} / {sum(m['kernel_status'].values())} converged", flush=True)
    print("median overhead per shape (certified histograms only):")
    for shape in shapes:
        name = "x".join(map(str, shape))
        ok = [r for r in rows if r["shape"] == name and r["ok"]]
        if not ok:
            print(f"{name:>9s}  no certified histogram")
            continue
        ov = float(np.median([r["overhead_s"] for r in ok]))
        fr = float(np.median([r["overhead_s"] / r["pid_s"] for r in ok]))
        print(f"{name:>9s}  overhead {ov * 1e6:7.1f} us  ({fr:.0%} of the pid call)  "
              f"[{'<' if ov < 50e-6 else '>='} 50 us]")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(rows=rows, machine=dict(platform=platform.platform(), cpus=os.cpu_count(),
                                                   loadavg=os.getloadavg())), fh, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
