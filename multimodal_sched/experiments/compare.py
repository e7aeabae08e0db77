"""The comparison table: methods x seeds x datasets, two test protocols, mean ± std, wall time.

    python -m multimodal_sched compare --datasets cg-digits --seeds 0 1 2 --out DIR [--methods ...]

Every number is a test accuracy of one run of :func:`multimodal_sched.run` (no other training
loop).  Two protocols per run:

* ``test_val_selected`` (primary): the checkpoint with the best validation accuracy, tested once;
* ``test_best_epoch``: the best test accuracy over the Stage II (joint) epochs - the protocol of
  the authors' public code (the paper states none); shown beside the primary one, never used to
  choose anything.

Rows (method names as ``--method``): ``unimodal1`` / ``unimodal2`` (one ``unimodal`` run, each
encoder with its own head), ``concat`` (fused loss only), ``uniform`` (fused + unimodal losses,
equal weights), ``aux0.6`` (the public code's 0.6 weight), ``mi``, ``pid`` (the controllers, then
Stage II), any other registered method (``ogm-ge``, ``pmr``, ``mmpareto``, ``mla``, ``udi``,
``sequential``, ``gblending``, ``agm``, ``joint``), and ``schedule`` = every fixed schedule
``schedule-E1-E2`` of ``schedule_grid`` (Stage I epochs of each encoder, 0 allowed, then Stage II),
run from one Stage I trajectory per seed; the table adds ``schedule (best on val)``, the schedule
with the best validation accuracy per seed (ties: first in grid order).

Finished runs are reused (``out/DATASET/seedS/METHOD``), so an interrupted comparison resumes.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..config import METHODS
from ._common import base_config, run_or_reuse, selected_on, stage2_from, trajectory

__all__ = ["compare", "DEFAULT_METHODS", "SCHEDULE_GRID", "COLUMNS", "summarize", "format_table"]

log = logging.getLogger(__name__)

DEFAULT_METHODS = ("unimodal1", "unimodal2", "concat", "uniform", "aux0.6", "mi", "pid", "schedule")
#: Stage I epochs (encoder 1, encoder 2) of the fixed schedules: every pair of the two lists
SCHEDULE_GRID = ((0, 5, 20), (0, 5, 20))
COLUMNS = ("dataset", "method", "seed", "test_val_selected", "test_best_epoch", "val", "selected_on",
           "stage1_epochs_m1", "stage1_epochs_m2", "selected_epoch", "wall_s", "run_dir")
BEST_SCHEDULE = "schedule (best on val)"


def _method_names() -> list:
    return ["unimodal1", "unimodal2", "schedule", *[m for m in METHODS if m not in ("unimodal", "schedule")]]


def _check_methods(methods) -> list:
    if isinstance(methods, str):
        methods = [methods]
    methods = list(methods)
    known = _method_names()
    bad = [m for m in methods if m not in known]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {known}")
    if not methods:
        raise ValueError("methods is empty")
    return list(dict.fromkeys(methods))


def _row(dataset, method, seed, sel_on, d, *, test, best, val, epochs, sel_epoch, wall) -> dict:
    return {"dataset": dataset, "method": method, "seed": seed, "test_val_selected": test,
            "test_best_epoch": best, "val": val, "selected_on": sel_on,
            "stage1_epochs_m1": int(epochs[0]), "stage1_epochs_m2": int(epochs[1]),
            "selected_epoch": sel_epoch, "wall_s": wall, "run_dir": d.get("run_dir")}


def _best(d: dict):
    b = d.get("test_best_epoch")
    return None if b is None else b["accuracy"]


def _task(args) -> list:
    """One job: the rows of one method (or of all schedules) for one dataset and seed."""
    dataset, seed, method, out, val, overrides, grid = args
    base = base_config(dataset, seed, val=val, overrides=overrides)
    sel_on = selected_on(base)
    folder = os.path.join(out, dataset, f"seed{seed}")
    if method == "unimodal":
        d = run_or_reuse(base.replace(method="unimodal"), os.path.join(folder, "unimodal"))
        rows = []
        for m in ("1", "2"):
            u = d["unimodal"][m]
            ep = [base.unimodal_epochs, 0] if m == "1" else [0, base.unimodal_epochs]
            rows.append(_row(dataset, f"unimodal{m}", seed, sel_on, d, test=u["test_accuracy"],
                             best=(u.get("test_best_epoch") or {}).get("accuracy"), val=u["val_accuracy"],
                             epochs=ep, sel_epoch=u["epoch"], wall=d["wall_time_s"]))
        return rows
    if method == "schedule":
        e1s, e2s = (sorted(set(g)) for g in grid)
        traj_out = os.path.join(folder, "schedule-trajectory")
        t = trajectory(base, e1s, e2s, traj_out)
        rows = []
        for e1 in e1s:
            for e2 in e2s:
                name = f"schedule-{e1}-{e2}"
                d = stage2_from(base, traj_out, e1, e2, os.path.join(folder, name))
                # wall time: this Stage II plus the trajectory's epochs up to (e1, e2), pro rata
                share = (e1 + e2) / max(1, max(e1s) + max(e2s))
                rows.append(_row(dataset, name, seed, sel_on, d, test=d["test_accuracy"], best=_best(d),
                                 val=d["val_accuracy"], epochs=[e1, e2], sel_epoch=d["selected"].get("epoch"),
                                 wall=d["wall_time_s"] + share * t["wall_time_s"]))
        return rows
    d = run_or_reuse(base.replace(method=method), os.path.join(folder, method))
    return [_row(dataset, method, seed, sel_on, d, test=d["test_accuracy"], best=_best(d), val=d["val_accuracy"],
                 epochs=d["stage1_epochs"] if method not in ("joint",) and not base.replace(method=method).joint_from_scratch
                 else [0, 0], sel_epoch=d["selected"].get("epoch"), wall=d["wall_time_s"])]


def _mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    a = np.asarray(xs, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarize(rows: list) -> list:
    """Per dataset and method: mean ± std over seeds of both protocols, val and wall time, plus the
    ``schedule (best on val)`` row (per seed the schedule of best val accuracy)."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        rr = [r for r in rows if r["dataset"] == ds]
        groups = {}
        for r in rr:
            groups.setdefault(r["method"], []).append(r)
        sched = [r for r in rr if r["method"].startswith("schedule-")]
        if sched:
            picks = []
            for seed in dict.fromkeys(r["seed"] for r in sched):
                cand = [r for r in sched if r["seed"] == seed]
                picks.append(max(cand, key=lambda r: r["val"]))   # max keeps the first of ties: grid order
            groups[BEST_SCHEDULE] = picks
        for method, g in groups.items():
            s = {"dataset": ds, "method": method, "n_seeds": len(g), "seeds": [r["seed"] for r in g],
                 "selected_on": g[0]["selected_on"]}
            for key in ("test_val_selected", "test_best_epoch", "val", "wall_s", "stage1_epochs_m1",
                        "stage1_epochs_m2"):
                s[f"{key}_mean"], s[f"{key}_std"] = _mean_std([r[key] for r in g])
            if method == BEST_SCHEDULE:
                s["picked"] = [r["method"] for r in g]
            out.append(s)
    return out


def _pct(m, s) -> str:
    return "n/a" if m is None else f"{100 * m:.1f} ± {100 * s:.1f}"


def format_table(summary: list) -> str:
    """Markdown: one table per dataset."""
    lines = []
    for ds in dict.fromkeys(s["dataset"] for s in summary):
        ss = [s for s in summary if s["dataset"] == ds]
        lines += [f"**{ds}** (checkpoints selected on {ss[0]['selected_on']}; test accuracy %, mean ± std over "
                  f"{max(s['n_seeds'] for s in ss)} seeds)", "",
                  "| method | test, val-selected | test, best Stage II epoch (public-code protocol) | val | "
                  "Stage I epochs m1 / m2 | wall s |", "|---|---|---|---|---|---|"]
        for s in ss:
            label = s["method"]
            if "picked" in s:
                label += " (picked " + ", ".join(p.replace("schedule-", "") for p in s["picked"]) + ")"
            e1, e2 = s["stage1_epochs_m1_mean"], s["stage1_epochs_m2_mean"]
            lines.append(f"| {label} | {_pct(s['test_val_selected_mean'], s['test_val_selected_std'])} | "
                         f"{_pct(s['test_best_epoch_mean'], s['test_best_epoch_std'])} | "
                         f"{_pct(s['val_mean'], s['val_std'])} | {e1:.0f} / {e2:.0f} | {s['wall_s_mean']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def _plot(summary: list, path: str) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "bar plot skipped: matplotlib is not installed"
    datasets = list(dict.fromkeys(s["dataset"] for s in summary))
    fig, axes = plt.subplots(len(datasets), 1, figsize=(10, 3.6 * len(datasets)), squeeze=False)
    for ax, ds in zip(axes[:, 0], datasets):
        ss = [s for s in summary if s["dataset"] == ds and not s["method"].startswith("schedule-")]
        x = np.arange(len(ss))
        for off, key, label, hatch in ((-0.2, "test_val_selected", "test, val-selected", None),
                                       (0.2, "test_best_epoch", "test, best epoch (public code)", "//")):
            m = [100 * (s[f"{key}_mean"] or 0) for s in ss]
            e = [100 * (s[f"{key}_std"] or 0) for s in ss]
            ax.bar(x + off, m, 0.4, yerr=e, label=label, hatch=hatch, alpha=0.85, capsize=2)
        ax.set_xticks(x, [s["method"] for s in ss], rotation=30, ha="right")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{ds} (selected on {ss[0]['selected_on']})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def compare(datasets=("cg-digits",), methods=DEFAULT_METHODS, seeds=(0, 1, 2), out: str = "runs/compare", *,
            val: str | None = None, schedule_grid=SCHEDULE_GRID, overrides: dict | None = None,
            jobs: int = 1) -> dict:
    """Run (or reuse) every method x seed x dataset and write ``results.csv``, ``results.json``,
    ``table.md`` and ``results.png`` under ``out``.

    val : ``"shifted"`` selects checkpoints on cg-digits' shift-aware val split (random colors);
        None / ``"iid"``: val drawn like train.  Every row states it (``selected_on``).
    schedule_grid : ``(epochs1, epochs2)``: the fixed schedules are every pair.
    overrides : RunConfig fields for every run (e.g. fewer epochs).
    jobs : worker processes (each run uses one torch thread).
    Returns ``{"rows", "summary", "table"}``.
    """
    if isinstance(datasets, str):
        datasets = [datasets]
    datasets, methods, seeds = list(datasets), _check_methods(methods), list(seeds)
    if not datasets or not seeds:
        raise ValueError("datasets and seeds must not be empty")
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {seeds}")
    if not (isinstance(jobs, int) and jobs >= 1):
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if "schedule" in methods:
        if not (isinstance(schedule_grid, (tuple, list)) and len(schedule_grid) == 2 and all(schedule_grid)):
            raise ValueError(f"schedule_grid must be two non-empty lists of epochs, got {schedule_grid!r}")
        if any(not isinstance(e, int) or e < 0 for g in schedule_grid for e in g):
            raise ValueError(f"schedule_grid epochs must be non-negative integers, got {schedule_grid!r}")
    for ds in datasets:   # every config error before the first epoch
        for m in methods:
            name = {"unimodal1": "unimodal", "unimodal2": "unimodal"}.get(m, m)
            base_config(ds, seeds[0], val=val, overrides=overrides).replace(method=name).validate()
    run_methods = list(dict.fromkeys("unimodal" if m.startswith("unimodal") else m for m in methods))
    # long jobs first so the workers finish together
    order = {"schedule": 0, "pid": 1, "mi": 1}
    tasks = [(ds, seed, m, out, val, overrides, [list(g) for g in schedule_grid])
             for m in sorted(run_methods, key=lambda m: order.get(m, 2)) for ds in datasets for seed in seeds]
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            parts = list(ex.map(_task, tasks))
    else:
        parts = [_task(t) for t in tasks]
    rows = [r for part in parts for r in part
            if not r["method"].startswith("unimodal") or r["method"] in methods]
    key = {m: i for i, m in enumerate(methods)}
    rows.sort(key=lambda r: (datasets.index(r["dataset"]),
                             key.get(r["method"], key.get("schedule", 0)), r["method"], r["seed"]))
    summary = summarize(rows)
    table = format_table(summary)
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    note = _plot(summary, os.path.join(out, "results.png"))
    meta = {"datasets": datasets, "methods": methods, "seeds": seeds, "val": val or "iid",
            "schedule_grid": [list(g) for g in schedule_grid], "overrides": overrides or {},
            "protocols": {"test_val_selected": "test accuracy of the checkpoint with the best validation accuracy "
                                               "(primary)",
                          "test_best_epoch": "best test accuracy over Stage II epochs (authors' public code; "
                                             "not a selection on held-out data)"},
            "wall_s": time.time() - t0, "plot": note or "results.png"}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "summary": summary}, f, indent=2)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table + "\n")
    if note:
        log.warning("%s", note)
    return {"rows": rows, "summary": summary, "table": table, "plot_note": note}
