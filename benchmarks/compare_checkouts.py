"""Time ``fastpid.pid(P)`` in two checkouts of this repository, alternately.

    git worktree add /tmp/before <commit>
    python benchmarks/compare_checkouts.py /tmp/before [--shapes 8x8x4,20x20x6,...] [--rounds 3]

On a shared or throttled machine the speed of the same code drifts by 1.5x
within minutes, so two benchmark runs made one after the other do not show a
change of 1.3x.  This script interleaves them instead: for every shape and
round it runs one child process in the other checkout (``PYTHONPATH`` set to
it) and one in this one, each timing ``pid(P)`` on the same three
Dirichlet(1) histograms (seeds 0-2, each certified) after a warm-up on a
2x2x2 histogram (Numba compiled or loaded from the checkout's own cache
before the clock starts; a checkout that has never run compiles first, which
takes about a minute), one BLAS and one Numba thread.  Printed per shape: the best single call of each checkout over all
rounds, the median, their ratio, and the Newton steps of each (which must
agree when the change is only in how a step is computed).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
threadpool_limits(1)
import numba
numba.set_num_threads(1)
import fastpid
shape, calls = {shape!r}, {calls}
fastpid.pid(np.random.default_rng(0).dirichlet(np.ones(8)).reshape(2, 2, 2))
Ps = [np.random.default_rng(s).dirichlet(np.ones(int(np.prod(shape)))).reshape(shape) for s in range(3)]
ts, steps = [], []
for _ in range(calls):
    for P in Ps:
        t0 = time.perf_counter()
        r = fastpid.pid(P)
        ts.append(time.perf_counter() - t0)
        if len(steps) < len(Ps):
            assert r.converged
            steps.append(int(r.iterations))
print(json.dumps(dict(file=fastpid.__file__, times=ts, steps=steps)))
"""


def _shape(text):
    try:
        dims = tuple(int(x) for x in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"a shape is n1xn2xny with positive sizes, got {text!r}")
    return dims


def _child(root, shape, calls):
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD.format(shape=shape, calls=calls)], cwd=root, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"the child in {root} failed:\n{out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if not os.path.abspath(res["file"]).startswith(os.path.abspath(root)):
        sys.exit(f"the child in {root} imported fastpid from {res['file']}, not from that checkout")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other", help="the other checkout (a directory holding fastpid/)")
    ap.add_argument("--shapes", type=lambda s: [_shape(x) for x in s.split(",")],
                    default=[(8, 8, 4), (20, 20, 6), (32, 32, 8), (64, 64, 10), (100, 20, 10), (128, 128, 16)])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    other = os.path.abspath(args.other)
    if not os.path.isdir(os.path.join(other, "fastpid")):
        ap.error(f"{other} holds no fastpid/ package")
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    print(f"this checkout: {HERE}\nother:         {other}")
    print(f"{'shape':>12} {'other best':>11} {'this best':>10} {'ratio':>6} {'other med':>10} {'this med':>9}"
          f"  steps (other / this)")
    for shape in args.shapes:
        cells = shape[0] * shape[1] * shape[2]
        calls = max(1, min(200, int(2e5 / cells ** 1.2)))
        times = {"other": [], "this": []}
        steps = {}
        for _ in range(args.rounds):
            for name, root in (("other", other), ("this", HERE)):
                res = _child(root, shape, calls)
                times[name] += res["times"]
                steps[name] = res["steps"]
        best = {k: min(v) for k, v in times.items()}
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}

        def ms(x):
            return f"{x * 1e3:.2f} ms" if x < 0.01 else f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"
        label = "x".join(map(str, shape))
        print(f"{label:>12} {ms(best['other']):>11} {ms(best['this']):>10} {best['other'] / best['this']:>5.2f}x"
              f" {ms(med['other']):>10} {ms(med['this']):>9}  {steps['other']} / {steps['this']}", flush=True)


if __name__ == "__main__":
    main()
