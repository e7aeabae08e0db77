"""PNG plots of a run directory (matplotlib, Agg backend), built from events.jsonl."""
from __future__ import annotations

import json
import os

__all__ = ["plot_run", "plot_atoms", "read_events", "atom_series", "marked_events"]

ATOMS = ("R", "U1", "U2", "S", "I1", "I2")


def atom_series(probes: list) -> dict:
    """``{atom: (epochs, estimates, lower errors, upper errors)}`` from probe events.

    Errors are the distances to the probe's interval ``[lo, hi]`` (zero where a probe has none).
    """
    out = {}
    for k in ATOMS:
        if not all(isinstance(p.get(k), (int, float)) for p in probes):
            continue
        x, y, lo, hi = [], [], [], []
        for p in probes:
            iv = (p.get("interval") or {}).get(k)
            v = float(p[k])
            x.append(p["epoch"])
            y.append(v)
            lo.append(max(v - iv[0], 0.0) if iv else 0.0)
            hi.append(max(iv[1] - v, 0.0) if iv else 0.0)
        out[k] = (x, y, lo, hi)
    return out


def plot_atoms(probes: list, path: str, plt=None, extra=()) -> str:
    """PID atoms (bits) over Stage I epochs with their intervals as error bars; every probe's
    decision rule marked at the top (Stage II start as a vertical line)."""
    if plt is None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, (x, y, lo, hi) in atom_series(probes).items():
        ax.errorbar(x, y, yerr=[lo, hi], marker="o", ms=4, capsize=3, label=k)
    top = ax.get_ylim()[1]
    for p in probes:
        d = p.get("decision") or {}
        rule = d.get("rule", "")
        if d.get("start_joint"):
            ax.axvline(p["epoch"], color="k", ls="--", lw=1)
            ax.annotate(f"Stage II ({rule})", (p["epoch"], top), rotation=90, va="top", ha="right", fontsize=7)
        elif rule not in ("", "initial", "no_evidence"):
            mods = d.get("modalities", [])
            ax.annotate(f"{rule}: train {mods}", (p["epoch"], top), rotation=90, va="top", ha="left",
                        fontsize=7, color="0.3")
    for e in extra:
        what = "rollback to " + str(e.get("to_epoch")) if e["type"] == "rollback" else f"restore m{e.get('modality')}"
        ax.annotate(what, (e["epoch"], ax.get_ylim()[0]), rotation=90, va="bottom", fontsize=7, color="tab:red")
    ax.set_xlabel("Stage I epoch")
    ax.set_ylabel("bits (error bars: bootstrap intervals where probed)")
    ax.set_title("Probes over Stage I")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def marked_events(events: list) -> list:
    """The events :func:`plot_atoms` marks besides the probes' decisions (rollbacks, restores)."""
    return [e for e in events if e["type"] in ("rollback", "restore")]


def read_events(run_dir: str) -> list:
    with open(os.path.join(run_dir, "events.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_run(run_dir: str) -> list:
    """Write ``pid_atoms.png`` (when the run probed) and ``accuracy.png``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    events = read_events(run_dir)
    written = []
    probes = [e for e in events if e["type"] == "probe"]
    if probes:
        path = plot_atoms(probes, os.path.join(run_dir, "pid_atoms.png"), plt,
                          extra=marked_events(events))
        written.append(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    s1 = [e for e in events if e["type"] == "epoch" and e["phase"] == "stage1"]
    offset = s1[-1]["epoch"] if s1 else 0
    for m in (1, 2):
        pts = [(e["epoch"], e[f"m{m}"]["val_acc"]) for e in s1 if f"m{m}" in e]
        if pts:
            ax.plot(*zip(*pts), ".-", label=f"Stage I val acc, modality {m}")
    s2 = [e for e in events if e["type"] == "epoch" and e["phase"] == "stage2"]
    if s2:
        x = [offset + e["epoch"] for e in s2]
        ax.plot(x, [e["val_acc"] for e in s2], "o-", label="Stage II val acc (fused)")
        ax.plot(x, [e["train_acc"] for e in s2], "--", label="Stage II train acc (fused)")
    ax.set_xlabel("epoch (Stage II after Stage I)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(run_dir, "accuracy.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    return written
