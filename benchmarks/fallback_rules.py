"""The controller's two fallback rules on finished ``pid`` runs, without retraining.

Every ``pid`` run with ``fallback`` trains plain joint training too (``RUN_DIR/fallback``) and
records the paired val counts b (only the scheduled model right) and c (only joint training right).
``fallback_rule="worse"`` (the default) falls back when c - b > z sqrt(b + c); ``"not-better"``
keeps the schedule only when b - c > z sqrt(b + c).  Whatever "worse" falls back on, "not-better"
falls back on too, and whatever "not-better" keeps, "worse" keeps, so both outcomes follow from
one run: the scheduled model's test accuracy where the run kept it, the fallback model's from
``fallback/result.json``.

    python benchmarks/fallback_rules.py COMPARE_DIR [COMPARE_DIR ...] [--z 2]

COMPARE_DIR is a ``python -m multimodal_sched compare`` output (DATASET/seedN/pid/result.json).
"""
from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np

from multimodal_sched.runner import falls_back


def outcomes(run_dir: str, z: float) -> dict:
    with open(os.path.join(run_dir, "result.json")) as f:
        res = json.load(f)
    fb = res.get("fallback")
    if not fb:
        raise ValueError(f"{run_dir}: no fallback check in result.json (run with fallback=True)")
    with open(os.path.join(run_dir, "fallback", "result.json")) as f:
        joint = json.load(f)["test_accuracy"]
    b, c = fb["only_scheduled_right"], fb["only_joint_right"]
    if fb["fell_back"] != falls_back(b, c, fb["fallback_z"], fb.get("fallback_rule", "worse")):
        raise ValueError(f"{run_dir}: recorded decision {fb['fell_back']} differs from its rule's")
    scheduled = None if fb["fell_back"] else res["test_accuracy"]
    falls = {rule: falls_back(b, c, z, rule) for rule in ("worse", "not-better")}
    if scheduled is None and not all(falls.values()):
        raise ValueError(f"{run_dir}: the run fell back, so the scheduled model's test accuracy is not "
                         f"recorded, and a rule at z = {z} would keep it")
    acc = {rule: joint if fell else scheduled for rule, fell in falls.items()}
    thr = z * np.sqrt(b + c)
    return {"b": b, "c": c, "threshold": thr, **acc, "joint": joint, "fell_back": falls}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--z", type=float, default=2.0)
    args = ap.parse_args(argv)
    for d in args.dirs:
        for ds_dir in sorted(glob.glob(os.path.join(d, "*", ""))):
            runs = sorted(glob.glob(os.path.join(ds_dir, "seed*", "pid")))
            if not runs:
                continue
            try:
                rows = [(r, outcomes(r, args.z)) for r in runs]
            except (OSError, KeyError, ValueError) as e:
                raise SystemExit(f"fallback_rules.py: {e}") from None
            print(f"\n{ds_dir}  (z = {args.z})")
            print("| seed | b / c | threshold | worse | not-better | joint |")
            print("|---|---|---|---|---|---|")
            for r, o in rows:
                seed = os.path.basename(os.path.dirname(r))
                fmt = lambda v, fell: f"{100 * v:.1f}{' (fallback)' if fell else ''}"  # noqa: E731
                print(f"| {seed} | {o['b']} / {o['c']} | {o['threshold']:.1f} | {fmt(o['worse'], o['fell_back']['worse'])}"
                      f" | {fmt(o['not-better'], o['fell_back']['not-better'])} | {100 * o['joint']:.1f} |")
            for rule in ("worse", "not-better", "joint"):
                v = 100 * np.array([o[rule] for _, o in rows])
                print(f"mean {rule}: {v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}")


if __name__ == "__main__":
    main()
