"""PNG plots of a run directory (matplotlib, Agg backend), built from events.jsonl."""
from __future__ import annotations

import json
import os

__all__ = ["plot_run", "read_events"]


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
        fig, ax = plt.subplots(figsize=(6, 4))
        x = [p["epoch"] for p in probes]
        for k in ("R", "U1", "U2", "S", "I1", "I2"):
            if all(p.get(k) is not None for p in probes):
                ax.plot(x, [p[k] for p in probes], marker="o", label=k)
        ax.set_xlabel("Stage I epoch")
        ax.set_ylabel("bits")
        ax.set_title("Probes over Stage I")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(run_dir, "pid_atoms.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
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
