"""Numba compile time of the exact kernels, and the cost of loading them from the cache.

    python benchmarks/compile_times.py [--runs 2]

Starts fresh Python processes that share one empty Numba cache directory
(NUMBA_CACHE_DIR, a temporary directory): the first process compiles the
kernels and writes the cache, the later ones load it.  Each process times
``import fastpid``, the first single-histogram ``fastpid.pid(P)`` (the serial
kernel) and the first batched call (the ``prange`` kernel), and checks that
both solves converged.  Prints one line per process and the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import fastpid
t1 = time.perf_counter()
P = np.random.default_rng(0).dirichlet(np.ones(60)).reshape(3, 4, 5)
r1 = fastpid.pid(P)
t2 = time.perf_counter()
B = np.random.default_rng(1).dirichlet(np.ones(60), size=64).reshape(64, 3, 4, 5)
r2 = fastpid.pid(B)
t3 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, first_single_s=t2 - t1, first_batch_s=t3 - t2,
                      single_status=str(r1.info["status"]), single_converged=bool(r1.converged),
                      batch_converged=int(np.sum(r2.converged)), batch_n=64)))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2, help="processes (the first compiles; default 2)")
    args = ap.parse_args(argv)
    print(f"load average at start {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs", flush=True)
    ok = True
    with tempfile.TemporaryDirectory(prefix="fastpid-numba-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for i in range(args.runs):
            out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                                 check=True)
            d = json.loads(out.stdout.strip().splitlines()[-1])
            kind = "compile (empty cache)" if i == 0 else "cache load"
            good = d["single_converged"] and d["batch_converged"] == d["batch_n"]
            ok &= good
            print(f"process {i + 1} [{kind}]: import {d['import_s']:.2f} s, first pid(P) {d['first_single_s']:.2f} s, "
                  f"first batched pid {d['first_batch_s']:.2f} s; converged: single {d['single_converged']} "
                  f"({d['single_status']}), batch {d['batch_converged']}/{d['batch_n']}", flush=True)
    print(f"load average at end {os.getloadavg()[0]:.1f}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
