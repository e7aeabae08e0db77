"""The controller's targets: PID controller vs the best fixed schedule, concat, uniform and aux0.6.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/controller_targets.py \
        --datasets cg-digits synthetic --seeds 0 1 2 --out runs/controller_targets [--part all] \
        [--overrides '{"max_unimodal_epochs": 20}']

Every row is the test accuracy of the checkpoint selected on val (mean ± std over seeds).
"best fixed schedule" is the schedule of :data:`GRID` (Stage I epochs e1, e2 then Stage II,
the same Stage II as the controller) with the best *val* accuracy for each seed; it is never
picked on test.  Runs are resumable: a run directory with a result.json is reused.
``--part baselines`` runs only the joint-training and fixed-schedule rows, ``--part pid`` only
the controller rows.  The table printed at the end is also written to OUT/table.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

GRID = [(a, b) for a in (2, 8, 30) for b in (2, 8, 30)]
JOINT = ("concat", "uniform", "aux0.6")


def specs(dataset: str, seed: int, part: str, pid_variants: dict, projection_dim=None, overrides=None) -> list:
    base = dict(dataset=dataset, seed=seed, progress=False, plots=False, num_threads=1, **(overrides or {}))
    if projection_dim is not None:   # baselines on the paper preset's architecture (64-d projection)
        base["projection_dim"] = projection_dim
        pid_variants = {k: v for k, v in pid_variants.items() if v.get("preset") == "paper"}
    out = []
    if part in ("all", "baselines"):
        out += [(m, dict(method=m)) for m in JOINT]
        out += [(f"schedule-{a}-{b}", dict(method="schedule", schedule_epochs=[a, b], stage2="uniform"))
                for a, b in GRID]
    if part in ("all", "pid"):
        out += [(name, dict(kw)) for name, kw in pid_variants.items()]
    return [(name, {**base, **kw}) for name, kw in out]


PID_VARIANTS = {
    "pid": dict(method="pid", preset="crema-sweep"),
    "pid-paper-rule": dict(method="pid", preset="crema-sweep", decision_rule="paper", fallback=False,
                           val_patience=None),
    "pid-paper-preset": dict(method="pid", preset="paper"),
    # the paper preset with the two guards of the default preset: val patience and the fallback
    "pid-paper-guards": dict(method="pid", preset="paper", val_patience=3, fallback=True),
    # the default preset probing 1,280 training samples, as the authors' public code does
    "pid-probe-train": dict(method="pid", preset="crema-sweep", probe_data="train"),
}


def run_one(name: str, cfg: dict, out: str) -> dict:
    from multimodal_sched import RunConfig, run

    path = os.path.join(out, "result.json")
    if os.path.exists(path):
        with open(path) as f:
            d = json.load(f)
    else:
        preset = cfg.pop("preset", None)
        c = RunConfig.from_preset(preset, **cfg, out=out) if preset else RunConfig(**cfg, out=out)
        d = run(c, overwrite=True).to_dict()
    dec = [(p["epoch"], p.get("decision", {}).get("rule")) for p in d.get("probes", [])]
    return {"name": name, "dataset": cfg["dataset"], "seed": cfg["seed"], "test": d["test_accuracy"],
            "val": d["val_accuracy"], "stage1_epochs": d["stage1_epochs"], "wall_time_s": d["wall_time_s"],
            "fallback": d.get("fallback"), "rules": dec}


def fmt(xs) -> str:
    xs = np.asarray(xs, dtype=float) * 100
    return f"{xs.mean():.1f} ± {xs.std(ddof=1) if len(xs) > 1 else 0.0:.1f}"


def table(rows: list, datasets, seeds) -> str:
    lines = ["| row | " + " | ".join(datasets) + " |", "|" + "---|" * (len(datasets) + 1)]
    names = []
    for r in rows:
        if not r["name"].startswith("schedule-") and r["name"] not in names:
            names.append(r["name"])
    cells = {}
    for ds in datasets:
        r = [x for x in rows if x["dataset"] == ds]
        for name in names:
            sel = [x for x in r if x["name"] == name]
            if not sel:
                continue
            c = fmt([x["test"] for x in sel])
            if name.startswith("pid"):
                e = np.mean([x["stage1_epochs"] for x in sel], axis=0)
                c += f" (Stage I {e[0]:.0f}/{e[1]:.0f}; fallback {sum(bool(x['fallback'] and x['fallback']['fell_back']) for x in sel)}/{len(sel)})"
            cells.setdefault(name, {})[ds] = c
        best = []
        for seed in seeds:
            sch = [x for x in r if x["seed"] == seed and x["name"].startswith("schedule-")]
            if sch:
                best.append(max(sch, key=lambda x: x["val"]))
        if best:
            picks = ", ".join(x["name"].replace("schedule-", "") for x in best)
            cells.setdefault("best fixed schedule (val-picked)", {})[ds] = fmt([x["test"] for x in best]) + f" ({picks})"
        joint = [np.mean([x["test"] for x in r if x["name"] == m]) for m in JOINT if any(x["name"] == m for x in r)]
        if joint:
            cells.setdefault("best plain joint (mean over seeds)", {})[ds] = f"{100 * max(joint):.1f}"
    for label, row in cells.items():
        lines.append(f"| {label} | " + " | ".join(row.get(ds, "n/a") for ds in datasets) + " |")
    lines.append("")
    lines.append(f"Test accuracy (%) of the val-selected checkpoint, mean ± std over seeds {list(seeds)}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["cg-digits", "synthetic"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", default="runs/controller_targets")
    p.add_argument("--part", choices=("all", "baselines", "pid"), default="all")
    p.add_argument("--table-only", action="store_true", help="print the table of the runs already finished")
    p.add_argument("--projection-dim", type=int, default=None,
                   help="every run with this projection_dim (the paper preset's 64): baselines on its architecture")
    p.add_argument("--overrides", type=json.loads, default=None, metavar="JSON",
                   help="RunConfig fields of every run, e.g. reduced epochs (the variants' own fields win)")
    a = p.parse_args(argv)
    rows = []
    for ds in a.datasets:
        for seed in a.seeds:
            for name, cfg in specs(ds, seed, "all" if a.table_only else a.part, PID_VARIANTS, a.projection_dim,
                                   a.overrides):
                d = os.path.join(a.out, ds, f"seed{seed}", name)
                if a.table_only:
                    if not os.path.exists(os.path.join(d, "result.json")):
                        continue
                t0 = time.time()
                r = run_one(name, dict(cfg), d)
                rows.append(r)
                if not a.table_only:
                    print(f"{ds} seed{seed} {name}: test {r['test']:.4f} val {r['val']:.4f} "
                          f"({time.time() - t0:.0f}s)", flush=True)
    text = table(rows, a.datasets, a.seeds)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
