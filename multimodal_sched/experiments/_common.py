"""What compare and grid share: the base config, run-or-reuse, one Stage I trajectory with kept epochs."""
from __future__ import annotations

import json
import os

import torch

from ..config import CONTROLLER_FIELDS, RunConfig
from ..rundir import move_aside

__all__ = ["base_config", "run_or_reuse", "trajectory", "start_state", "selected_on", "parse_epochs"]


def base_config(dataset: str, seed: int, *, val: str | None = None, overrides: dict | None = None) -> RunConfig:
    """The config every experiment run starts from: RunConfig defaults, quiet, one thread, test tracked.

    val : ``"iid"`` or ``"shifted"`` (cg-digits' ``dataset_options["val"]``); None: the dataset's default.
    overrides : RunConfig fields (e.g. reduced epochs for tests).
    """
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a registered dataset name, got {type(dataset).__name__}")
    d = dict(dataset=dataset, seed=seed, progress=False, plots=False, track_test=True, num_threads=1)
    if overrides:
        if not isinstance(overrides, dict):
            raise TypeError(f"overrides must be a dict of RunConfig fields, got {type(overrides).__name__}")
        d.update(overrides)
    opts = dict(d.get("dataset_options") or {})
    if val is not None:
        opts["val"] = val
    d["dataset_options"] = opts
    cfg = RunConfig.from_dict(d)
    cfg.validate()
    return cfg


def selected_on(cfg: RunConfig) -> str:
    """Which split selected the reported checkpoints: ``val`` or ``val (shifted)``."""
    v = cfg.dataset_options.get("val")
    return "val" if v in (None, "iid") else f"val ({v})"


def _read(path: str):
    with open(path) as f:
        return json.load(f)


def _same_run(saved: dict, cfg: RunConfig) -> bool:
    """Whether a saved config.json describes the run ``cfg`` (fields it lacks take their defaults;
    the controller's fields do not matter to other methods)."""
    try:
        have = RunConfig.from_dict(saved).to_dict()
    except (ValueError, TypeError):
        return False
    want = cfg.to_dict()
    if cfg.method not in ("pid", "mi"):
        for f in CONTROLLER_FIELDS:
            have.pop(f, None)
            want.pop(f, None)
    return have == want


def run_or_reuse(cfg: RunConfig, out: str, **run_kw) -> dict:
    """``run(cfg, out=out).to_dict()``, or the finished run's result.json when ``out`` holds one
    of the same run.  An unfinished or different run there is moved aside (:func:`multimodal_sched.rundir.move_aside`), never deleted."""
    from ..runner import run

    res, conf = os.path.join(out, "result.json"), os.path.join(out, "config.json")
    if os.path.isfile(res) and os.path.isfile(conf) and _same_run(_read(conf), cfg.replace(out=out)):
        return _read(res)
    if os.path.exists(out):
        move_aside(out)
    return run(cfg.replace(out=out), **run_kw).to_dict()


def parse_epochs(v, name: str) -> list:
    """``"0,1,5"`` or a sequence -> sorted unique non-negative ints (ValueError naming ``name``)."""
    if isinstance(v, str):
        parts = [p for p in v.replace(" ", "").split(",") if p]
    else:
        parts = list(v)
    try:
        out = sorted({int(p) for p in parts})
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be non-negative integers like 0,1,5, got {v!r}") from None
    if not out or out[0] < 0 or any(isinstance(p, bool) or (isinstance(p, float) and p != int(p)) for p in parts):
        raise ValueError(f"{name} must be non-negative integers like 0,1,5, got {v!r}")
    return out


def _kept(out: str, m: int, e: int) -> str:
    return os.path.join(out, "stage1", f"m{m}_e{e:04d}.pt")


def trajectory(base: RunConfig, epochs1, epochs2, out: str) -> dict:
    """Train each encoder once (Stage I of a fixed schedule up to the largest epochs, both in
    parallel as ``schedule`` does), keeping encoder + head at every requested epoch.  Returns the
    run's result dict; the kept weights are under ``out/stage1``.  Reused when complete."""
    cfg = base.replace(method="schedule", schedule_epochs=[max(epochs1), max(epochs2)], stage2_epochs=1,
                       track_test=False)
    done = all(os.path.isfile(_kept(out, m, e)) for m, es in ((1, epochs1), (2, epochs2)) for e in es)
    if not done and os.path.exists(out):
        move_aside(out)
    return run_or_reuse(cfg, out, keep_stage1={1: list(epochs1), 2: list(epochs2)})


def start_state(out: str, e1: int, e2: int) -> dict:
    """The ``run(start=...)`` of start point (e1, e2) from a :func:`trajectory` folder."""
    s1 = torch.load(_kept(out, 1, e1), weights_only=False, map_location="cpu")
    s2 = torch.load(_kept(out, 2, e2), weights_only=False, map_location="cpu")
    return {"modality_epochs": [e1, e2], "state": {"encoder1": s1["encoder"], "head1": s1["head"],
                                                   "encoder2": s2["encoder"], "head2": s2["head"]}}


def stage2_from(base: RunConfig, traj_out: str, e1: int, e2: int, out: str) -> dict:
    """Stage II from start point (e1, e2) of a trajectory: the ``schedule-e1-e2`` run, reusing it."""
    cfg = base.replace(method="schedule", schedule_epochs=[e1, e2])
    return run_or_reuse(cfg, out, start=start_state(traj_out, e1, e2))
