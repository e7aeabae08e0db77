"""End-to-end runs (reduced), the run directory, resume, and validation before training."""
import json
import os

import numpy as np
import pytest
import torch

import multimodal_sched as ms
from multimodal_sched import RunConfig, run

# Tiny runs: a few epochs on a subsampled cg-digits; "analytic" (closed-form,
# no JIT compile, always feasible) keeps probes instant.
TINY = dict(dataset="cg-digits", dataset_options={"n_train": 200}, width=4, batch_size=64,
            max_unimodal_epochs=4, probe_every=2, stage2_epochs=2, joint_epochs=2, unimodal_epochs=2,
            schedule_epochs=[1, 2], k=5, pca_dims=3, pid_method="analytic", progress=False,
            fallback=False)   # the fallback run has tests of its own (test_sched_targets.py)


def tiny(tmp_path, name="run", **kw):
    return RunConfig(**{**TINY, "out": str(tmp_path / name), **kw})


# 4 classes (chance 0.25) that a few epochs learn well above chance
LEARNS = dict(TINY, dataset="synthetic", dataset_options={"n_train": 600}, width=8, joint_epochs=3, unimodal_epochs=3)


def accuracy_on(model, ds) -> float:
    """Fused accuracy of ``model`` on a TensorDataset, computed here (not by the runner)."""
    x1, x2, y = ds.tensors
    model.eval()
    with torch.no_grad():
        return (model(x1, x2)[0].argmax(1) == y).double().mean().item()


def read_events(d):
    with open(os.path.join(d, "events.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_pid_run_writes_run_directory(tmp_path):
    res = run(tiny(tmp_path, lambda_s=0.999, tau_u=1.01))
    d = res.run_dir
    for f in ("config.json", "events.jsonl", "result.json", "pid_atoms.png", "accuracy.png",
              "checkpoints/last.pt", "checkpoints/best.pt"):
        assert os.path.isfile(os.path.join(d, f)), f
    ev = read_events(d)
    probes = [e for e in ev if e["type"] == "probe"]
    epochs = [e for e in ev if e["type"] == "epoch"]
    assert probes and all({"R", "U1", "U2", "S", "decision", "reason", "modality_epochs"} <= set(p) for p in probes)
    assert len(probes) == len(res.probes)
    n1 = len([e for e in epochs if e["phase"] == "stage1"])
    assert n1 == max(p["epoch"] for p in probes) <= 4
    assert len([e for e in epochs if e["phase"] == "stage2"]) == 2
    assert ev[-1]["type"] == "result"
    with open(os.path.join(d, "result.json")) as f:
        saved = json.load(f)
    assert saved["test_accuracy"] == pytest.approx(res.test_accuracy)
    # the reported accuracy is the returned (val-selected) model's on the test split
    test = ms.make_cg_digits(seed=0, n_train=200).splits["test"]
    assert res.test_accuracy == pytest.approx(accuracy_on(res.model, test), abs=1e-12)
    assert sum(res.stage1_epochs) >= n1
    # the selected checkpoint is the best val epoch of Stage II
    s2 = [e["val_acc"] for e in epochs if e["phase"] == "stage2"]
    assert res.val_accuracy == pytest.approx(max(s2))
    assert res.selected["epoch"] == 1 + int(np.argmax(s2))
    assert isinstance(res.model, torch.nn.Module)


@pytest.mark.parametrize("method", ["mi", "joint", "unimodal", "schedule"])
def test_baselines_run(tmp_path, method):
    res = run(RunConfig(**{**LEARNS, "method": method, "fusion": "sum" if method == "joint" else "concat",
                           "plots": False, "out": str(tmp_path / "run")}))
    assert res.test_accuracy > 0.3                                   # 4 classes: chance is 0.25
    if method != "unimodal":
        test = ms.make_synthetic(seed=0, n_train=600).splits["test"]
        assert res.test_accuracy == pytest.approx(accuracy_on(res.model, test), abs=1e-12)
    if method == "unimodal":
        assert set(res.unimodal) == {"1", "2"} and res.stage1_epochs == [3, 3]
        assert res.test_accuracy == res.unimodal[str(res.selected["modality"])]["test_accuracy"]
    if method == "schedule":
        assert res.stage1_epochs == [1, 2]
    if method == "joint":
        assert res.stage1_epochs == [0, 0]
    if method == "mi":
        assert res.probes and "I1" in res.probes[0] and "U1" not in res.probes[0]


def test_resume_equals_uninterrupted(tmp_path):
    cfg = tiny(tmp_path, "full", plots=False)
    full = run(cfg)
    part = cfg.replace(out=str(tmp_path / "part"))
    with pytest.raises(ms.RunInterrupted):
        run(part, interrupt_after=1)            # stops inside Stage I (after the epoch-0 probe and epoch 1)
    n1 = len([e for e in read_events(cfg.out) if e["type"] == "epoch" and e["phase"] == "stage1"])
    assert n1 >= 2
    with pytest.raises(ms.RunInterrupted):
        run(None, resume=part.out, interrupt_after=n1)   # and again inside Stage II (its first epoch)
    resumed = run(None, resume=part.out)
    assert resumed.test_accuracy == full.test_accuracy
    assert resumed.val_accuracy == full.val_accuracy
    assert resumed.stage1_epochs == full.stage1_epochs
    assert [p["S"] for p in resumed.probes] == [p["S"] for p in full.probes]
    strip = lambda evs: [{k: v for k, v in e.items() if k not in ("run_dir", "wall_time_s")} for e in evs]
    assert strip(read_events(part.out)) == strip(read_events(cfg.out))
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_cli_run_and_resume_flags(tmp_path, capsys):
    from multimodal_sched.cli import main

    cfg = tiny(tmp_path, "cli", method="joint", plots=False)
    path = tmp_path / "cfg.yaml"
    ms.save_config(cfg, str(path))
    assert main(["run", "--config", str(path), "--seed", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seed"] == 1 and out["method"] == "joint"
    assert main(["run", "--config", str(path)]) == 2         # run dir exists: refuses to overwrite
    assert main(["run", "--resume", cfg.out]) == 0            # finished run: resume is a no-op
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == out["test_accuracy"]
    assert main(["run", "--dataset", "nope", "--out", str(tmp_path / "x")]) == 2
    assert not os.path.exists(tmp_path / "x")


# ------------------------------------------------------------- validation before training
@pytest.mark.parametrize("change, match", [
    (dict(dataset="mnist"), "unknown dataset"),
    (dict(dataset="npz", data_path="/nonexistent/file.npz"), "file not found"),
    (dict(stage2_epochs=-1), "non-negative"),
    (dict(max_unimodal_epochs=-3), "non-negative"),
    (dict(method="best"), "unknown method"),
    (dict(tau_u=0.5), "tau_u"),
    (dict(k=10_000), "probe samples"),
])
def test_bad_configs_raise_before_training(tmp_path, change, match):
    cfg = tiny(tmp_path, "bad", **change)
    with pytest.raises(ValueError, match=match):
        run(cfg)
    assert not os.path.exists(cfg.out)          # nothing written, nothing trained


def test_config_round_trip_and_unknown_keys(tmp_path):
    cfg = tiny(tmp_path)
    for name in ("c.json", "c.yaml"):
        ms.save_config(cfg, str(tmp_path / name))
        assert ms.load_config(str(tmp_path / name)) == cfg
    with pytest.raises(ValueError, match="unknown config key"):
        RunConfig.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="not found"):
        ms.load_config(str(tmp_path / "missing.yaml"))


def test_datasets_are_deterministic_and_show_the_shortcut():
    a, b = ms.make_cg_digits(seed=3), ms.make_cg_digits(seed=3)
    for s in ("train", "test"):
        for ta, tb in zip(a.splits[s].tensors, b.splits[s].tensors):
            assert torch.equal(ta, tb)
    assert not torch.equal(ms.make_cg_digits(seed=4).splits["train"].tensors[0][:5], a.splits["train"].tensors[0][:5])
    # the color of a train sample predicts its label, the color of a test sample does not
    from multimodal_sched.data.builtin.cg_digits import PALETTE

    clean = ms.make_cg_digits(seed=3, gray_noise=0.0, color_noise=0.0)
    pal = torch.nn.functional.normalize(torch.tensor(PALETTE, dtype=torch.float32), dim=1)

    def color_acc(split):
        gray, x2, y = clean.splits[split].tensors
        rgb = torch.nn.functional.normalize(x2.sum((2, 3)), dim=1)   # color direction of the digit
        return ((rgb @ pal.T).argmax(1) == y).float().mean().item()

    assert color_acc("train") > 0.9 and color_acc("test") < 0.3
    s1, s2 = ms.make_synthetic(seed=0), ms.make_synthetic(seed=0)
    assert torch.equal(s1.splits["probe"].tensors[0], s2.splits["probe"].tensors[0])
    assert set(s1.splits) == {"train", "val", "probe", "test"}


def test_compare_summary_picks_schedule_on_val_not_test():
    from multimodal_sched.experiments.compare import BEST_SCHEDULE, summarize

    def row(method, seed, val, test):
        return {"dataset": "cg-digits", "method": method, "seed": seed, "test_val_selected": test,
                "test_best_epoch": test, "val": val, "selected_on": "val", "stage1_epochs_m1": 1,
                "stage1_epochs_m2": 0, "wall_s": 1.0}

    rows = [row("schedule-1-1", s, 0.9, 0.2) for s in (0, 1)] + [row("schedule-1-3", s, 0.8, 0.7) for s in (0, 1)]
    rows += [row("concat", 0, 0.5, 0.4), row("concat", 1, 0.5, 0.5)]
    summ = {s["method"]: s for s in summarize(rows)}
    best = summ[BEST_SCHEDULE]
    assert best["picked"] == ["schedule-1-1", "schedule-1-1"] and best["test_val_selected_mean"] == pytest.approx(0.2)
    assert summ["concat"]["test_val_selected_mean"] == pytest.approx(0.45)
    assert summ["concat"]["test_val_selected_std"] == pytest.approx(np.std([0.4, 0.5], ddof=1))


@pytest.mark.slow
def test_default_run_on_cg_digits_completes(tmp_path):
    res = run(RunConfig(out=str(tmp_path / "default"), progress=False))
    assert res.test_accuracy > 0.2 and res.probes
