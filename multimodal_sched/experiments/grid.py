"""The grid analysis (the paper's Figure 7, Table III, Figure 8): does PID at the start of Stage II
predict how well fusion goes?

    python -m multimodal_sched grid --dataset cg-digits --seed 0 --out DIR \\
        [--epochs1 0,1,2,5,20 --epochs2 0,1,5,10,30]

Each encoder is trained once (one Stage I trajectory, :func:`~._common.trajectory`) and its
weights are kept at the requested epochs.  For every start point ``(e1, e2)``:

* the probe: PID atoms R, U1, U2, S and I1, I2 (bits) of the two kept encoders on the probe split,
  with bootstrap 95 % intervals, by :func:`multimodal_sched.probing.probe_estimate`
  (``fastpid.estimate``);
* Stage II from that start point (the ``schedule-e1-e2`` run, :func:`multimodal_sched.run` with
  ``start=``) and its test accuracy under both protocols (val-selected; best Stage II epoch on
  test, the authors' public code's).

Writes ``grid.csv`` (one row per start point), ``grid.json`` (rows, and ``spearman``: rank
correlations with p-values of each accuracy against S, the uniqueness imbalance
``|log((U1 + eps) / (U2 + eps))|`` with U1, U2 clipped at 0, I1, I2 and R) and heatmaps ``heatmap_<quantity>.png``.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from ._common import _kept, base_config, parse_epochs, selected_on, stage2_from, trajectory

__all__ = ["grid", "ATOMS", "PREDICTORS", "IMBALANCE_EPS"]

ATOMS = ("R", "U1", "U2", "S", "I1", "I2")
#: eps of the uniqueness imbalance |log((U1 + eps) / (U2 + eps))| (bits)
IMBALANCE_EPS = 1e-3
PREDICTORS = ("S", "imbalance", "I1", "I2", "R")
ACCURACIES = ("test_val_selected", "test_best_epoch")


def _probe(z1, z2, y, *, k, seed, n_boot):
    from .. import probing

    if hasattr(probing, "probe_estimate"):
        return probing.probe_estimate(z1, z2, y, k=k, seed=seed, n_boot=n_boot)
    from fastpid.estimate import pid_from_samples   # same estimator, k from k^2 * ny <= n / 5

    n, ny = len(y), len(np.unique(y))
    k = k or max(2, int(math.sqrt(n / (5 * ny))))
    return pid_from_samples(z1, z2, y, bins=k, discretizer="kmeans", pca_dims=5, seed=seed, n_boot=n_boot,
                            bias_correction="bootstrap")


def _atoms(est) -> dict:
    out = {}
    for a in ATOMS:
        out[a] = float(est.estimate[a])
        lo, hi = (est.intervals or {}).get(a, (math.nan, math.nan))
        out[f"{a}_lo"], out[f"{a}_hi"] = float(lo), float(hi)
        out[f"{a}_plugin"] = float(est.plugin[a])
    out["k"] = int(est.histogram.shape[0])
    out["n_probe"] = int(est.n_samples)
    return out


def _encoders(cfg, mdata):
    from ..data import build_dataset
    from ..runner import _make_encoder

    _, encs = build_dataset(cfg)
    if encs is None:
        encs = [_make_encoder(cfg, tuple(mdata.sample(m).shape[1:])) for m in (1, 2)]
    return list(encs)


def _spearman(rows: list) -> dict:
    from scipy.stats import spearmanr

    out = {}
    for acc in ACCURACIES:
        a = np.array([np.nan if r[acc] is None else r[acc] for r in rows], dtype=float)
        out[acc] = {}
        for p in PREDICTORS:
            x = np.array([r[p] for r in rows], dtype=float)
            ok = np.isfinite(a) & np.isfinite(x)
            if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(x[ok]) == 0:
                out[acc][p] = {"rho": None, "p": None, "n": int(ok.sum())}
                continue
            rho, pv = spearmanr(x[ok], a[ok])
            out[acc][p] = {"rho": float(rho), "p": float(pv), "n": int(ok.sum())}
    return out


def _heatmaps(rows, e1s, e2s, out) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "heatmaps skipped: matplotlib is not installed"
    for q in (*ACCURACIES, *ATOMS, "imbalance"):
        m = np.full((len(e1s), len(e2s)), np.nan)
        for r in rows:
            v = r[q]
            m[e1s.index(r["e1"]), e2s.index(r["e2"])] = np.nan if v is None else v
        fig, ax = plt.subplots(figsize=(4.6, 3.8))
        im = ax.imshow(m, origin="lower", cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(e2s)), e2s)
        ax.set_yticks(range(len(e1s)), e1s)
        ax.set_xlabel("Stage I epochs, modality 2")
        ax.set_ylabel("Stage I epochs, modality 1")
        for i in range(len(e1s)):
            for j in range(len(e2s)):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
        unit = "accuracy" if q in ACCURACIES else "bits"
        ax.set_title(f"{q} ({unit})", fontsize=9)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"heatmap_{q}.png"), dpi=100)
        plt.close(fig)
    return None


def grid(dataset: str = "cg-digits", seed: int = 0, out: str = "runs/grid", *,
         epochs1=(0, 1, 2, 5, 20), epochs2=(0, 1, 5, 10, 30), val: str | None = None,
         k: int | None = None, n_boot: int = 200, eps: float = IMBALANCE_EPS,
         overrides: dict | None = None) -> dict:
    """Run the grid analysis; returns ``{"rows", "spearman", "meta"}`` (also in ``out/grid.json``).

    epochs1, epochs2 : Stage I epochs of each encoder ("0,1,5" or a list; 0 = untrained).
    k : clusters per modality of the probe (None: the probe's own rule from the sample size).
    n_boot : bootstrap replicates of the atoms' 95 % intervals.
    eps : of the imbalance ``|log((U1 + eps) / (U2 + eps))|``.
    overrides : RunConfig fields of every run (e.g. ``{"stage2_epochs": 5}``).
    Finished runs under ``out`` are reused.
    """
    e1s, e2s = parse_epochs(epochs1, "epochs1"), parse_epochs(epochs2, "epochs2")
    if not (isinstance(n_boot, int) and n_boot >= 1):
        raise ValueError(f"n_boot must be an integer >= 1 (the intervals need a bootstrap), got {n_boot!r}")
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be > 0, got {eps!r}")
    if k is not None and not (isinstance(k, int) and k >= 2):
        raise ValueError(f"k must be None or an integer >= 2, got {k!r}")
    base = base_config(dataset, seed, val=val, overrides=overrides)
    t0 = time.time()
    os.makedirs(out, exist_ok=True)
    traj_out = os.path.join(out, "trajectory")
    traj = trajectory(base, e1s, e2s, traj_out)
    from ..data import build_dataset

    mdata, _ = build_dataset(base)
    enc1, enc2 = _encoders(base, mdata)
    loader = DataLoader(mdata.splits["probe"], batch_size=256, shuffle=False)
    from ..probing import embed_pair

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(base.num_threads or torch_threads)
    rows = []
    try:
        for e1 in e1s:
            for e2 in e2s:
                for m, enc, e in ((1, enc1, e1), (2, enc2, e2)):
                    enc.load_state_dict(torch.load(_kept(traj_out, m, e), weights_only=False,
                                                   map_location="cpu")["encoder"])
                z1, z2, y = embed_pair(enc1, enc2, loader)
                atoms = _atoms(_probe(z1, z2, y, k=k, seed=seed, n_boot=n_boot))
                d = stage2_from(base, traj_out, e1, e2, os.path.join(out, f"schedule-{e1}-{e2}"))
                best = d.get("test_best_epoch")
                rows.append({"e1": e1, "e2": e2, **atoms,
                             "imbalance": abs(math.log((max(atoms["U1"], 0.0) + eps) / (max(atoms["U2"], 0.0) + eps))),
                             "test_val_selected": d["test_accuracy"],
                             "test_best_epoch": None if best is None else best["accuracy"],
                             "val": d["val_accuracy"], "wall_s": d["wall_time_s"]})
    finally:
        torch.set_num_threads(torch_threads)
    spearman = _spearman(rows)
    cols = ["e1", "e2", *[c for a in ATOMS for c in (a, f"{a}_lo", f"{a}_hi")], "imbalance",
            "test_val_selected", "test_best_epoch", "val", *[f"{a}_plugin" for a in ATOMS], "k", "n_probe", "wall_s"]
    with open(os.path.join(out, "grid.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    note = _heatmaps(rows, e1s, e2s, out)
    meta = {"dataset": dataset, "seed": seed, "epochs1": e1s, "epochs2": e2s, "selected_on": selected_on(base),
            "n_boot": n_boot, "k": k, "confidence": 0.95, "imbalance": "|log((U1 + eps) / (U2 + eps))|",
            "eps": eps, "overrides": overrides or {}, "stage2": base.stage2, "stage2_epochs": base.stage2_epochs,
            "trajectory_wall_s": traj["wall_time_s"], "wall_s": time.time() - t0,
            "plots": note or "heatmap_<quantity>.png",
            "note": "atoms are bias-corrected estimates (bits); _lo/_hi the bootstrap 95% interval; "
                    "the imbalance clips negative corrected U1, U2 at 0"}
    result = {"rows": rows, "spearman": spearman, "meta": meta}
    with open(os.path.join(out, "grid.json"), "w") as f:
        json.dump(result, f, indent=2, allow_nan=True)
    return result
