"""The comparison table: every method x seeds x datasets, test accuracy mean ± std.

    python -m multimodal_sched compare --datasets cg-digits synthetic --seeds 0 1 2 --out runs/compare

Rows: each unimodal encoder, naive joint training (concat and sum fusion), the
MI-driven controller, the PID-driven controller (Algorithm 1), and the best
fixed Stage I schedule of a small grid, the best one chosen *per seed on the
val split* (never on test).  All runs use the same RunConfig defaults apart
from the method; test accuracy is that of the val-selected checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .config import RunConfig

__all__ = ["compare", "SCHEDULE_GRID", "run_spec"]

log = logging.getLogger(__name__)

SCHEDULE_GRID = [(5, 5), (5, 20), (20, 5), (20, 20)]
MODALITY_NAMES = {"cg-digits": ("gray", "color"), "synthetic": ("weak m1", "strong m2")}


def _specs(dataset: str, seed: int, quick: bool):
    base = dict(dataset=dataset, seed=seed, progress=False, plots=False)
    if quick:
        base.update(max_unimodal_epochs=4, stage2_epochs=2, joint_epochs=3, unimodal_epochs=3,
                    probe_every=2, k=5)
    grid = [(1, 1), (1, 3)] if quick else SCHEDULE_GRID
    specs = [("unimodal", dict(method="unimodal")),
             ("joint-concat", dict(method="joint", fusion="concat")),
             ("joint-sum", dict(method="joint", fusion="sum")),
             ("mi", dict(method="mi")),
             ("pid", dict(method="pid"))]
    specs += [(f"schedule-{a}-{b}", dict(method="schedule", schedule_epochs=[a, b])) for a, b in grid]
    return [(name, {**base, **kw}) for name, kw in specs]


def run_spec(args) -> dict:
    """Run one (name, config dict, run dir) spec; returns a small JSON-able summary."""
    name, cfg, out = args
    from .runner import run

    if os.path.exists(os.path.join(out, "result.json")):
        with open(os.path.join(out, "result.json")) as f:
            d = json.load(f)
    else:
        if os.path.exists(out):
            import shutil
            shutil.rmtree(out)
        d = run(RunConfig(**cfg, out=out)).to_dict()
    return {"name": name, "dataset": cfg["dataset"], "seed": cfg["seed"], "test": d["test_accuracy"],
            "val": d["val_accuracy"], "unimodal": d["unimodal"], "stage1_epochs": d["stage1_epochs"],
            "wall_time_s": d["wall_time_s"]}


def _fmt(xs) -> str:
    xs = np.asarray(xs, dtype=float) * 100
    return f"{xs.mean():.1f} ± {xs.std(ddof=1) if len(xs) > 1 else 0.0:.1f}"


def compare(*, datasets=("cg-digits", "synthetic"), seeds=(0, 1, 2), out: str = "runs/compare",
            quick: bool = False, jobs: int = 2) -> str:
    """Run the grid (resumable: finished runs are reused) and return the Markdown table."""
    t0 = time.time()
    todo = []
    for ds in datasets:
        for seed in seeds:
            for name, cfg in _specs(ds, seed, quick):
                todo.append((name, cfg, os.path.join(out, ds, f"seed{seed}", name)))
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            rows = list(ex.map(run_spec, todo))
    else:
        rows = [run_spec(t) for t in todo]
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(rows, f, indent=2)
    labels = {ds: MODALITY_NAMES.get(ds, ("m1", "m2")) for ds in datasets}
    lines = ["| method | " + " | ".join(datasets) + " |", "|" + "---|" * (len(datasets) + 1)]
    cells = {}   # row label -> {dataset: cell}
    for ds in datasets:
        r = [x for x in rows if x["dataset"] == ds]
        uni = [x for x in r if x["name"] == "unimodal"]
        for m in ("1", "2"):
            name = labels[ds][int(m) - 1]
            cells.setdefault(f"unimodal, modality {m}", {})[ds] = (
                _fmt([x["unimodal"][m]["test_accuracy"] for x in uni]) + f" ({name})")
        for key, label in (("joint-concat", "naive joint, concat"), ("joint-sum", "naive joint, sum"),
                           ("mi", "MI controller, then Stage II (concat)"),
                           ("pid", "PID controller (Algorithm 1), then Stage II (concat)")):
            sel = [x for x in r if x["name"] == key]
            cell = _fmt([x["test"] for x in sel])
            if key in ("mi", "pid"):
                e = np.mean([x["stage1_epochs"] for x in sel], axis=0)
                cell += f" (mean Stage I epochs {e[0]:.0f} / {e[1]:.0f})"
            cells.setdefault(label, {})[ds] = cell
        best = []
        for seed in seeds:
            sch = [x for x in r if x["seed"] == seed and x["name"].startswith("schedule-")]
            best.append(max(sch, key=lambda x: x["val"]))   # ties: first in grid order
        picks = ", ".join(x["name"].replace("schedule-", "") for x in best)
        cells.setdefault("best fixed schedule e1-e2 (picked on val per seed)", {})[ds] = (
            _fmt([x["test"] for x in best]) + f" (picked {picks})")
    for label, row in cells.items():
        lines.append(f"| {label} | " + " | ".join(row.get(ds, "n/a") for ds in datasets) + " |")
    total = sum(x["wall_time_s"] for x in rows)
    lines.append("")
    lines.append(f"Test accuracy (%) of the val-selected checkpoint, mean ± std over seeds {list(seeds)}; "
                 f"{len(rows)} runs, {total / 60:.1f} min of run time, {(time.time() - t0) / 60:.1f} min wall.")
    text = "\n".join(lines)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text + "\n")
    return text

