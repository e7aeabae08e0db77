"""The coverage, bias and timing studies of ``pid_from_samples`` reported in docs/estimate.md.

    python benchmarks/estimate_coverage.py coverage [REPS]       # noisy gates, n = 500
    python benchmarks/estimate_coverage.py coverage20 REPS N_BOOT N [CORRECTION [N_SPLIT [INNER]]]
    python benchmarks/estimate_coverage.py kink                  # plug-in bias and sd vs n
    python benchmarks/estimate_coverage.py bias                  # error of each correction vs n
    python benchmarks/estimate_coverage.py timing                # n_boot = 1000 on 20x20x6

Each line printed says how many of the solves behind it converged.  The
helpers (``known_20x20x6``, ``coverage``, ``bias_errors``) are also used by
``tests/test_estimate_coverage.py``.
"""
from __future__ import annotations

import sys
import time
import warnings

import numpy as np

import fastpid
from fastpid import distributions as D
from fastpid.estimate import pid_from_samples

METHOD = "exact"
ATOMS = ("R", "U1", "U2", "S")


def known_20x20x6(noise=0.1, agree=0.9):
    """A fixed 20x20x6 distribution with R, U1 and S all clearly positive.

    x1 = (h1, s1), x2 = (h2, s2) with h in {0, 1} and s in 0..9 uniform;
    h2 = h1 with probability ``agree``; Y = (h1, (s1 + s2) mod 3), the mod-3
    part replaced by a uniform draw with probability ``noise``.  So h1 is
    unique to X1 except where X2's copy of it agrees (redundancy), and the
    mod-3 sum is synergistic.  1,200 of the 2,400 cells carry mass.
    """
    P = np.zeros((20, 20, 6))
    for x1 in range(20):
        for x2 in range(20):
            h1, s1, h2, s2 = x1 // 10, x1 % 10, x2 // 10, x2 % 10
            pxx = 0.5 * (agree if h1 == h2 else 1 - agree) / 100
            for m in range(3):
                py = (1 - noise) * (m == (s1 + s2) % 3) + noise / 3
                P[x1, x2, 3 * h1 + m] += pxx * py
    return P


def sample_labels(P, n, rng):
    flat = np.asarray(P, dtype=float).ravel()
    idx = rng.choice(flat.size, size=n, p=flat / flat.sum())
    return np.unravel_index(idx, P.shape)


def truth(P):
    """The certified atoms of P (an uncertified reference is an error, never a truth)."""
    r = fastpid.pid(P, method=METHOD)
    if not r.converged:
        raise RuntimeError(f"the reference solve of the true distribution did not converge: {r.info['status']}")
    return {k: float(getattr(r, k)) for k in ATOMS}


def _tally(solves, est):
    """Add an estimate's solves (the plug-in and every replicate) to ``solves``."""
    if solves is None:
        return
    solves["total"] = solves.get("total", 0) + 1 + sum(est.info["replicates_total"].values())
    solves["converged"] = (solves.get("converged", 0) + int(est.info["converged"])
                           + sum(est.info["replicates_converged"].values()))


def coverage(P, *, n, reps, n_boot, bias_correction, seed0=0, n_split=10, n_boot_inner=1, solves=None):
    """Times out of ``reps`` that each atom's interval covers the true atom.
    ``solves``, a dict, receives the count of solves made and of those converged."""
    t = truth(P)
    hits = dict.fromkeys(ATOMS, 0)
    for r in range(reps):
        x1, x2, y = sample_labels(P, n, np.random.default_rng(seed0 + r))
        est = pid_from_samples(x1, x2, y, n_boot=n_boot, bias_correction=bias_correction, n_split=n_split,
                               n_boot_inner=n_boot_inner, seed=r, method=METHOD)
        _tally(solves, est)
        for k in ATOMS:
            lo, hi = est.intervals[k]
            hits[k] += lo <= t[k] <= hi
    return hits


def bias_errors(P, *, n, reps, n_boot=200, n_perm=200, n_split=10, seed0=0,
                kinds=("bootstrap", "shuffle", "extrapolation"), solves=None):
    """Per estimator (plug-in and each correction): ``mae``, the mean absolute
    error summed over the four atoms, and ``bias``, the absolute mean (signed)
    error summed over the atoms, over ``reps`` draws of ``n`` samples."""
    t = truth(P)
    kinds = ("plugin",) + tuple(kinds)
    errs = {c: [] for c in kinds}
    for r in range(reps):
        x1, x2, y = sample_labels(P, n, np.random.default_rng(seed0 + r))
        for corr in kinds[1:]:
            est = pid_from_samples(x1, x2, y, n_boot=n_boot if corr == "bootstrap" else 0,
                                   n_perm=n_perm if corr == "shuffle" else 0,
                                   n_split=n_split, bias_correction=corr, seed=r, method=METHOD)
            _tally(solves, est)
            errs[corr].append([est.estimate[k] - t[k] for k in ATOMS])
        errs["plugin"].append([est.plugin[k] - t[k] for k in ATOMS])
    out = {}
    for c, e in errs.items():
        e = np.array(e)
        out[c] = {"mae": float(np.abs(e).mean(axis=0).sum()), "bias": float(np.abs(e.mean(axis=0)).sum())}
    return out


def _solves_note(solves):
    bad = solves["total"] - solves["converged"]
    return f"solves converged {solves['converged']}/{solves['total']}" + (f" ({bad} NOT)" if bad else "")


def main(what="", *args):
    # ConvergenceWarnings of replicates are counted (solves converged ...), not printed one by one
    warnings.simplefilter("ignore", fastpid.ConvergenceWarning)
    if what == "coverage":  # noisy gates: coverage [REPS] (default 100 repetitions each)
        reps = int(args[0]) if args else 100
        t_all = time.perf_counter()
        for name in ("xor", "and_", "rdn", "unq", "copy"):
            P = D.noisy(getattr(D, name)(), 0.1)
            for corr, inner in ((None, 0), ("bootstrap", 0), ("bootstrap", 1)):
                t0 = time.perf_counter()
                solves = {}
                hits = coverage(P, n=500, reps=reps, n_boot=200, bias_correction=corr, seed0=1000, n_boot_inner=inner,
                                solves=solves)
                print(f"noisy {name:5s} eps=0.1 n=500 n_boot=200 correction={corr!s:9s} n_boot_inner={inner} "
                      f"covered/{reps}: {hits}  ({time.perf_counter() - t0:.0f} s; {_solves_note(solves)})",
                      flush=True)
        print(f"total {time.perf_counter() - t_all:.0f} s", flush=True)
    elif what == "coverage20":  # known 20x20x6: coverage20 REPS N_BOOT N [CORRECTION [N_SPLIT [INNER]]]
        reps, n_boot, n = (int(a) for a in args[:3])
        corr = args[3] if len(args) > 3 else "bootstrap"
        n_split = int(args[4]) if len(args) > 4 else 10
        inner = int(args[5]) if len(args) > 5 else 1
        t0 = time.perf_counter()
        solves = {}
        hits = coverage(known_20x20x6(), n=n, reps=reps, n_boot=n_boot, bias_correction=corr, n_split=n_split,
                        n_boot_inner=inner, solves=solves)
        print(f"known 20x20x6 n={n} n_boot={n_boot} correction={corr} n_boot_inner={inner} covered/{reps}: {hits}"
              f"  ({time.perf_counter() - t0:.0f} s; {_solves_note(solves)})", flush=True)
    elif what == "kink":  # plug-in bias and sd of the atoms vs n (scaled by sqrt(n)): O(1/sqrt(N)) bias at kinks
        for name in ("rdn", "and_", "xor", "unq", "copy"):
            P = D.noisy(getattr(D, name)(), 0.1)
            t = truth(P)
            rng = np.random.default_rng(0)
            for n in (125, 500, 2000, 8000, 32000):
                H = rng.multinomial(n, P.ravel(), size=4000).reshape((4000,) + P.shape).astype(np.float64)
                r = fastpid.pid(H, method=METHOD)
                v = {k: np.asarray(getattr(r, k), dtype=np.float64) for k in ATOMS}
                print(f"noisy {name:5s} n={n:6d} 4000 draws ({int(np.sum(r.converged))} converged): "
                      + "  ".join(f"{k}: bias*sqrtN={(v[k].mean() - t[k]) * np.sqrt(n):+.3f} "
                                  f"sd*sqrtN={v[k].std() * np.sqrt(n):.3f} bias*N={(v[k].mean() - t[k]) * n:+.2f}"
                                  for k in ATOMS), flush=True)
    elif what == "bias":
        runs = [("noisy and_ eps=0.2", D.noisy(D.and_(), 0.2), n, 30, 200, 10) for n in (30, 60, 120, 500)]
        runs += [("known 20x20x6", known_20x20x6(), n, 5, 50, 5) for n in (5000, 20000)]
        for label, P, n, reps, nb, ns in runs:
            solves = {}
            err = bias_errors(P, n=n, reps=reps, n_boot=nb, n_perm=nb, n_split=ns, solves=solves)
            print(f"{label:18s} n={n:6d} reps={reps} n_boot=n_perm={nb} n_split={ns}: sum over atoms of "
                  "(mean |error|, |mean error|) in bits: "
                  + ", ".join(f"{k}=({v['mae']:.4f}, {v['bias']:.4f})" for k, v in err.items())
                  + f"; {_solves_note(solves)}", flush=True)
    elif what == "timing":
        # n_boot=1000 of n=20000 samples of known_20x20x6, with and without the second
        # level, and a plain batched pid of 1000 20x20x6 histograms in the same run.
        import os
        P = known_20x20x6()
        x1, x2, y = sample_labels(P, 20000, np.random.default_rng(0))
        pid_from_samples(x1, x2, y, n_boot=8, method=METHOD)  # compile / warm up
        print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
        for inner in (0, 1):
            t0 = time.perf_counter()
            est = pid_from_samples(x1, x2, y, n_boot=1000, bias_correction="bootstrap", n_boot_inner=inner,
                                   method=METHOD)
            dt = time.perf_counter() - t0
            conv, tot = est.info["replicates_converged"], est.info["replicates_total"]
            print(f"pid_from_samples 20x20x6, n=20000, n_boot=1000, n_boot_inner={inner}: {dt:.2f} s "
                  f"(converged {conv} of {tot})", flush=True)
        batch = np.random.default_rng(1).multinomial(20000, P.ravel(), size=1000).reshape(1000, 20, 20, 6)
        t0 = time.perf_counter()
        res = fastpid.pid(batch.astype(np.float64), method=METHOD)
        dt = time.perf_counter() - t0
        print(f"fastpid.pid on a (1000, 20, 20, 6) batch of multinomial histograms: {dt:.2f} s "
              f"({int(np.sum(res.converged))}/1000 converged)", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    else:
        raise SystemExit("usage: python benchmarks/estimate_coverage.py "
                         "coverage [REPS]|coverage20 R B N [CORR [N_SPLIT [INNER]]]|kink|bias|timing")


if __name__ == "__main__":
    main(*sys.argv[1:])
