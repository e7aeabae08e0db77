"""Terminal tables, progress bars, results.csv / results.json and PNG plots."""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata

import numpy as np

__all__ = ["COLUMNS", "progress_factory", "print_tables", "write_csv", "write_json", "write_plots",
           "machine_info"]

COLUMNS = [
    "bench", "problem", "variant", "method", "backend", "n1", "n2", "ny", "size", "batch",
    "R", "U1", "U2", "S", "I", "gt_R", "gt_U1", "gt_U2", "gt_S", "mae_gt", "mae", "reference",
    "time_s", "time_min_s", "repeat", "throughput_per_s", "speedup", "iterations", "violation", "gap",
    "converged", "status", "warnings", "error", "exponent",
]

#: one colour per method in every plot
COLORS = {"GT": "black", "exact": "tab:blue", "fastpid": "tab:orange", "analytic": "tab:gray",
          "cvx-scs": "tab:purple", "cvx-clarabel": "tab:green"}

PACKAGES = ("fastpid", "numpy", "numba", "scipy", "cvxpy", "scs", "clarabel", "torch", "rich", "matplotlib")


# ----------------------------------------------------------------------------- progress
def progress_factory(enabled: bool):
    """Return ``progress(total, description)``: a context manager yielding ``tick()``."""

    @contextmanager
    def progress(total, description):
        if not enabled:
            yield lambda: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda: bar.advance(task)

    return progress


# ----------------------------------------------------------------------------- tables
def _f(v, fmt="{:.4f}"):
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        if fmt == "{:.4f}" and abs(v) < 5e-5:
            v = 0.0  # no "-0.0000"
    return fmt.format(v)


def _e(v):
    return _f(v, "{:.2e}")


def _t(v):
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return "-"
    return f"{v:.4f}" if v < 10 else f"{v:.2f}"


def _conv(r):
    if r.get("error"):
        return r["status"] if r["status"] == "skipped" else "error"
    c = r["converged"]
    if isinstance(c, float) and math.isfinite(c) and r["batch"] > 1:
        return f"{c:.0%}"
    return "yes" if c == 1 else "no"


def _table(title, headers, rows, caption=None):
    from rich.table import Table

    t = Table(title=title, caption=caption, header_style="bold")
    for i, h in enumerate(headers):
        t.add_column(h, justify="left" if i < 2 else "right")
    for r in rows:
        t.add_row(*[str(c) for c in r])
    return t


def _refs(rows):
    refs = sorted({r["reference"] for r in rows if r.get("reference")})
    return "MAE reference: " + (", ".join(refs) if refs else "none") + " (never the method scored)"


def tables(rows):
    """The rich tables of a run (one per bench present)."""
    out = []
    by = {}
    for r in rows:
        by.setdefault(r["bench"], []).append(r)
    if "gates" in by:
        body, last = [], None
        for r in by["gates"]:
            if r["problem"] != last:
                body.append([r["problem"], "theoretical GT"] + [_f(r[f"gt_{k}"]) for k in "R U1 U2 S".split()]
                            + ["", "", "", "", ""])
                last = r["problem"]
            body.append(["", r["method"]] + [_f(r[k]) for k in "R U1 U2 S".split()]
                        + [_e(r["mae_gt"]), _e(r["mae"]), _t(r["time_s"]), _conv(r), r["reference"]])
        out.append(_table("Gates (Table VI): PID atoms in bits, from samples",
                          ["Gate", "Method", "R", "U1", "U2", "S", "MAE vs GT", "MAE vs ref", "Time (s)",
                           "Conv.", "Reference"], body))
    if "gaussian" in by:
        body = [[r["problem"], r["method"]] + [_f(r[k]) for k in "R U1 U2 S".split()]
                + [_e(r["mae"]), _t(r["time_s"]), _e(r["violation"]), _conv(r), r["reference"]]
                for r in by["gaussian"]]
        out.append(_table("Gaussian (Table VII): PID atoms in bits, time of one solve",
                          ["Task", "Method", "R", "U1", "U2", "S", "MAE", "Time (s)", "Violation", "Conv.",
                           "Reference"], body, caption=_refs(by["gaussian"])))
    if "ablation" in by:
        body = [[r["variant"], r["method"], _t(r["time_s"]),
                 _f(r["speedup"], "{:.1f}x"), _e(r["mae"]), _f(r["iterations"], "{:.0f}"),
                 _e(r["violation"]), _conv(r)] for r in by["ablation"]]
        prob = by["ablation"][0]["problem"]
        out.append(_table(f"FastPID ablation (Tables IX, XI, XII) on Gaussian {prob}",
                          ["Setting", "Method", "Time (s)", "Speedup vs ref", "MAE vs ref", "Iters",
                           "Violation", "Conv."], body, caption=_refs(by["ablation"])))
    if "scaling" in by:
        single = [r for r in by["scaling"] if r["variant"] == "single"]
        body = [[r["method"], r["problem"], str(r["size"]), _t(r["time_s"]), _f(r["exponent"], "{:.2f}"),
                 _conv(r)] for r in single]
        out.append(_table("Scaling: time of one solve vs n1*n2*ny",
                          ["Method", "Shape", "Cells", "Time (s)", "Growth exp.", "Conv."], body,
                          caption="growth exponent: slope of log time vs log cells, 3 largest sizes"))
        labels = [r for r in by["scaling"] if r["variant"] == "labels"]
        if labels:
            ref = {r["problem"]: r for r in labels if r["method"] == "cvx-clarabel" and r["converged"]}
            body = [[r["method"], r["problem"], str(r["size"]), _t(r["time_s"]), _f(r["iterations"], "{:.0f}"),
                     _f(ref[r["problem"]]["time_s"] / r["time_s"] if r["problem"] in ref and r["time_s"] > 0
                        else math.nan, "{:.1f}x"), _conv(r)] for r in labels]
            out.append(_table("Many labels: time of one solve at the scheduler's probe shapes",
                              ["Method", "Shape", "Cells", "Time (s)", "Iters", "Speedup vs cvx-clarabel", "Conv."],
                              body,
                              caption="speedup: cvx-clarabel's time on the same histogram in this run, "
                                      "when it converged"))
        batched = [r for r in by["scaling"] if r["variant"] == "batched"]
        body = [[r["method"], r["problem"], str(r["batch"]), _t(r["time_s"]), _f(r["throughput_per_s"], "{:.1f}"),
                 _conv(r)] for r in batched]
        out.append(_table("Batched throughput", ["Method", "Batch", "B", "Time (s)", "Histograms/s", "Conv."],
                          body))
    return out


def print_tables(rows, console=None) -> None:
    from rich.console import Console

    console = console or Console()
    for t in tables(rows):
        console.print(t)
    errs = [r for r in rows if r.get("error") and r.get("status") != "skipped"]
    for r in errs:
        console.print(f"[red]{r['bench']} {r['problem']} {r['method']}: {r['error']}[/red]")


# ----------------------------------------------------------------------------- files
def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return _clean(v.item())
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def write_csv(rows, path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(r.get(k), float) and not math.isfinite(r[k]) else r.get(k, ""))
                        for k in COLUMNS})


def machine_info() -> dict:
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        n_avail = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        n_avail = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover
        load = None
    return {
        "load_average_1_5_15min": load,  # timings are only comparable on an otherwise idle machine
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_available": n_avail,
        "python": sys.version.split()[0],
        "versions": versions,
    }


def write_json(path, *, meta: dict, rows, problems) -> None:
    doc = dict(meta)
    doc["problems"] = [
        {"bench": b, "name": p.name, "shape": list(p.counts.shape), "digest": p.digest(), "params": p.params,
         "truth": p.truth}
        for b, p in problems
    ]
    doc["rows"] = [{k: r.get(k) for k in COLUMNS} for r in rows]
    with open(path, "w") as fh:
        json.dump(_clean(doc), fh, indent=2, allow_nan=False)


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- plots
def write_plots(rows, out_dir) -> list:
    """PNG plots; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    by = {}
    for r in rows:
        by.setdefault(r["bench"], []).append(r)

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, name), dpi=110)
        plt.close(fig)
        written.append(name)

    # time vs size, log axes (gaussian tasks and the scaling sweep)
    for bench, name in (("gaussian", "gaussian_time_vs_size.png"), ("scaling", "scaling_time_vs_size.png")):
        rs = [r for r in by.get(bench, []) if r["variant"] in ("", "single")]
        if not rs:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in dict.fromkeys(r["method"] for r in rs):
            pts = sorted((r["size"], r["time_s"]) for r in rs if r["method"] == method
                         and isinstance(r["time_s"], float) and math.isfinite(r["time_s"]) and r["time_s"] > 0)
            if pts:
                exp = next((r["exponent"] for r in rs if r["method"] == method), math.nan)
                lab = method + (f" (slope {exp:.2f})" if isinstance(exp, float) and math.isfinite(exp) else "")
                ax.plot(*zip(*pts), marker="o", label=lab, color=COLORS.get(method))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cells n1*n2*ny")
        ax.set_ylabel("time of one solve (s)")
        ax.set_title(f"{bench}: time vs problem size")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, name)

    # MAE per method (grouped by problem), log axis
    for bench in ("gates", "gaussian"):
        rs = by.get(bench, [])
        if not rs:
            continue
        probs = list(dict.fromkeys(r["problem"] for r in rs))
        methods = list(dict.fromkeys(r["method"] for r in rs))
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(probs) * len(methods) / 3), 4))
        w = 0.8 / len(methods)
        for j, method in enumerate(methods):
            vals = []
            for p in probs:
                r = next((r for r in rs if r["problem"] == p and r["method"] == method), None)
                v = r["mae"] if r else math.nan
                vals.append(max(v, 1e-16) if isinstance(v, float) and math.isfinite(v) else np.nan)
            ax.bar(np.arange(len(probs)) + (j - (len(methods) - 1) / 2) * w, vals, w, label=method,
                   color=COLORS.get(method))
        ax.set_xticks(np.arange(len(probs)))
        ax.set_xticklabels(probs)
        ax.set_yscale("log")
        ax.set_ylabel("MAE vs reference (bits)")
        ax.set_title(f"{bench}: MAE per method ({_refs(rs).split(' (')[0]})", fontsize=9)
        ax.legend(fontsize=8)
        save(fig, f"{bench}_mae.png")

    # PID atoms per method as grouped bars (Figure 9b), one panel per problem
    for bench in ("gates", "gaussian"):
        rs = by.get(bench, [])
        if not rs:
            continue
        probs = list(dict.fromkeys(r["problem"] for r in rs))
        methods = list(dict.fromkeys(r["method"] for r in rs))
        ncol = min(3, len(probs))
        nrow = -(-len(probs) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False)
        for ax in axes.flat[len(probs):]:
            ax.set_visible(False)
        for ax, p in zip(axes.flat, probs):
            prs = [r for r in rs if r["problem"] == p]
            series = []
            if bench == "gates":
                series.append(("GT", [prs[0][f"gt_{k}"] for k in "R U1 U2 S".split()]))
            for method in methods:
                r = next((r for r in prs if r["method"] == method), None)
                if r:
                    series.append((method, [r[k] for k in "R U1 U2 S".split()]))
            w = 0.8 / len(series)
            for j, (lab, vals) in enumerate(series):
                ax.bar(np.arange(4) + (j - (len(series) - 1) / 2) * w, vals, w, label=lab, color=COLORS.get(lab))
            ax.set_xticks(np.arange(4))
            ax.set_xticklabels(["R", "U1", "U2", "S"])
            ax.set_title(p, fontsize=9)
            ax.set_ylabel("bits")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{bench}: PID atoms per method", fontsize=10)
        save(fig, f"{bench}_atoms.png")

    # ablation: MAE and time per setting
    rs = [r for r in by.get("ablation", []) if r["variant"] != "reference"]
    if rs:
        groups = list(dict.fromkeys(r["variant"].split(":")[0] for r in rs))
        fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.4), squeeze=False)
        for ax, g in zip(axes[0], groups):
            grs = [r for r in rs if r["variant"].split(":")[0] == g]
            labels = [r["variant"].split("=", 1)[1] for r in grs]
            vals = [r["mae"] if isinstance(r["mae"], float) and math.isfinite(r["mae"]) else np.nan for r in grs]
            ax.bar(range(len(grs)), vals, color="tab:red", alpha=0.7)
            ax.set_xticks(range(len(grs)))
            ax.set_xticklabels(labels, fontsize=8)
            ax.set_ylabel("MAE vs reference (bits)")
            ax2 = ax.twinx()
            ax2.plot(range(len(grs)), [r["time_s"] for r in grs], "o-", color="tab:blue")
            ax2.set_ylabel("time (s)", color="tab:blue")
            ax.set_title(f"ablation: {g}", fontsize=9)
        save(fig, "ablation.png")
    return written
