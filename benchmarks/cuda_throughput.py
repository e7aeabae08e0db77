"""Batched PID throughput of the torch backend on CUDA vs the CPU, in one run.

    python benchmarks/cuda_throughput.py                      # 10,000 x 20x20x6, fp32 + fp64
    python benchmarks/cuda_throughput.py --n 1000 --devices cpu --methods exact
    python benchmarks/cuda_throughput.py --methods exact --engines torch numba --json out.json

For each method, device and dtype it times ``fastpid.pid`` on a batch of
Gaussian-task histograms (``fastpid_bench.problems.random_problem``) already on
that device, after a small warm-up batch (Numba JIT, CUDA context), and
reports histograms solved per second, the share that converged, the solver
statuses (uncertified exact solves are flagged under their row) and the largest
atom difference from the NumPy/Numba float64 reference on the first ``--check``
histograms.  The "numpy" row is the Numba backend on the same histograms.

``method="exact"`` is timed once per ``--engines`` entry on every device:
``engine="torch"`` is the native batched torch interior point on that device
(the items it cannot certify are re-solved by Numba; the "fallback" column
counts them), ``engine="numba"`` the Numba kernel on the CPU with a tensor
round trip.  ``method="fastpid"`` runs natively on the device.  Without a GPU
the CUDA rows are skipped with a note, so on a CPU-only machine the run
compares the native torch solver on the CPU with the Numba kernel.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

import fastpid  # noqa: F401  (the solver under test, reached through _record.solve)
from _record import solve, summary
from fastpid_bench.problems import random_problem

KEYS = ("R", "U1", "U2", "S")


def _histograms(n, shape, seed):
    return np.asarray(random_problem(*shape, seed=seed, batch=n, samples=5_000).counts, dtype=np.float64)


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _run(P, method, opts):
    """One solve; its ``converged`` and status are recorded (see _record.py)."""
    return solve(P, method=method, **opts)


def _outcome(rec):
    s = summary([rec])
    return dict(converged=s["converged"] / s["solves"], n_converged=s["converged"], n_solves=s["solves"],
                status=s["status"])


def _time(fn, device, repeat):
    best = np.inf
    out = None
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="histograms per batch (default 10000)")
    ap.add_argument("--shape", type=int, nargs=3, default=(20, 20, 6), metavar=("N1", "N2", "NY"))
    ap.add_argument("--methods", nargs="+", default=["exact", "fastpid"], choices=["exact", "fastpid", "analytic"])
    ap.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    ap.add_argument("--engines", nargs="+", default=["torch", "numba"], choices=["torch", "numba"],
                    help="engines timed for method='exact' on tensors (default: both)")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "fp64"], choices=["fp32", "fp64"])
    ap.add_argument("--fastpid-max-iter", type=int, default=2000, help="paper default 2000")
    ap.add_argument("--check", type=int, default=50, help="histograms compared with the NumPy reference")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the rows to this file")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads for the CPU rows (default: torch's choice)")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    shape = tuple(args.shape)
    P = _histograms(args.n, shape, args.seed)
    dtypes = {"fp32": torch.float32, "fp64": torch.float64}
    opts = {"exact": {}, "fastpid": {"max_iter": args.fastpid_max_iter}, "analytic": {}}
    rows = []
    header = {
        "n": args.n, "shape": list(shape), "torch": torch.__version__, "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    print(json.dumps(header))
    if any(d.startswith("cuda") for d in args.devices) and not torch.cuda.is_available():
        print("CUDA not available (torch.cuda.is_available() is False): CUDA rows skipped, "
              "the torch engine is measured on the CPU")
    print(f"{'method':8s} {'backend':7s} {'engine':6s} {'device':6s} {'dtype':5s} {'seconds':>9s} "
          f"{'solves/s':>10s} {'converged':>9s} {'fallback':>8s} {'max|dAtom| vs numpy (bits)':>27s}")

    for method in args.methods:
        n_chk = args.check if method != "fastpid" else min(args.check, 8)  # NumPy fastpid is slow
        ref_chk, _ = _run(P[:n_chk], method, opts[method])
        if method != "fastpid":  # the NumPy fastpid loops per histogram in Python: too slow at this size
            _run(P[:4], method, opts[method])  # JIT warm-up
            secs, (res, rec) = _time(lambda: _run(P, method, opts[method]), "cpu", args.repeat)
            rows.append(dict(method=method, backend="numpy", engine="numba" if method == "exact" else "-",
                             device="cpu", dtype="fp64", seconds=secs, solves_per_s=args.n / secs,
                             fallback=0, max_diff=0.0, **_outcome(rec)))
            _print(rows[-1])
        for device in args.devices:
            if device.startswith("cuda") and not torch.cuda.is_available():
                print(f"{method:8s} torch   {device:6s} -- skipped: torch.cuda.is_available() is False")
                continue
            engines = args.engines if method == "exact" else [None]
            for engine in engines:
                for dt in args.dtypes:
                    Pt = torch.tensor(P, dtype=dtypes[dt], device=device)
                    o = dict(opts[method], **({"engine": engine} if engine else {}))
                    _run(Pt[:4], method, o)  # warm-up (JIT, CUDA context, kernels)
                    secs, (res, rec) = _time(lambda Pt=Pt, o=o: _run(Pt, method, o), device, args.repeat)
                    diff = max(
                        float(np.max(np.abs(getattr(res, k)[:n_chk].detach().cpu().double().numpy()
                                            - np.asarray(getattr(ref_chk, k)))))
                        for k in KEYS
                    )
                    rows.append(dict(method=method, backend="torch", engine=engine or "-", device=device,
                                     dtype=dt, seconds=secs, solves_per_s=args.n / secs,
                                     fallback=res.info.get("numba_fallback", 0), max_diff=diff,
                                     **_outcome(rec)))
                    _print(rows[-1])
                    del Pt, res
                    if device.startswith("cuda"):
                        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"header": header, "rows": rows}, fh, indent=2)
    return rows


def _print(r):
    print(f"{r['method']:8s} {r['backend']:7s} {r['engine']:6s} {r['device']:6s} {r['dtype']:5s} "
          f"{r['seconds']:9.3f} {r['solves_per_s']:10.1f} {r['converged']:9.3f} {r['fallback']:8d} "
          f"{r['max_diff']:27.2e}  status {r['status']}", flush=True)
    if r["converged"] < 1 and r["method"] == "exact":
        print(f"{'':8s} only {r['n_converged']} of {r['n_solves']} certified: the solves/s above "
              f"includes {r['n_solves'] - r['n_converged']} failed solves", flush=True)


if __name__ == "__main__":
    main()
