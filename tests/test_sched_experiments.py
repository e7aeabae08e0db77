"""compare and grid on tiny settings: files, columns, the two protocols, reuse of one trajectory."""
import csv
import json
import math
import os

import numpy as np
import pytest
import torch

import multimodal_sched as ms
from multimodal_sched import RunConfig, run
from multimodal_sched.data.builtin.cg_digits import PALETTE
from multimodal_sched.experiments._common import base_config, stage2_from, trajectory

TINY = dict(dataset_options={"n_train": 200}, width=4, unimodal_epochs=2, joint_epochs=2, stage2_epochs=2,
            max_unimodal_epochs=3, probe_every=2, k=5, pca_dims=3, pid_method="analytic")


def test_cg_digits_sizes_colors_and_shifted_val():
    d = ms.make_cg_digits(seed=1)
    sizes = {k: len(v) for k, v in d.splits.items()}
    assert sizes["train"] >= 5000 and min(sizes["val"], sizes["probe"], sizes["test"]) >= 1000
    clean = ms.make_cg_digits(seed=1, gray_noise=0.0, color_noise=0.0)
    shifted = ms.make_cg_digits(seed=1, gray_noise=0.0, color_noise=0.0, val="shifted")

    def colors(data, split):
        _, x2, y = data.splits[split].tensors
        rgb = x2.amax((2, 3))                      # brightest pixel per channel: the paint color
        return (rgb / rgb.amax(1, keepdim=True)).numpy(), y.numpy()

    for data, split, corr in ((clean, "train", True), (clean, "val", True), (clean, "test", False),
                              (shifted, "val", False)):
        c, y = colors(data, split)
        own = np.linalg.norm(c - PALETTE[y], axis=1) < 0.05
        near_any = np.min(np.linalg.norm(c[:, None] - PALETTE[None], axis=2), axis=1) < 0.05
        if corr:
            assert own.mean() > 0.93
        else:   # random RGB: rarely the class color, rarely any palette color
            assert own.mean() < 0.02 and near_any.mean() < 0.1
    with pytest.raises(ValueError, match="val must be one of"):
        ms.make_cg_digits(val="test")
    with pytest.raises(ValueError, match="copies"):
        ms.make_cg_digits(copies={"train": 0})


def test_start_point_run_equals_the_schedule_run(tmp_path):
    """Stage II from a kept trajectory point is the fixed-schedule run it stands for."""
    base = base_config("cg-digits", 0, overrides=TINY)
    direct = run(base.replace(method="schedule", schedule_epochs=[1, 2], out=str(tmp_path / "direct")))
    trajectory(base, [0, 1, 3], [0, 2], str(tmp_path / "traj"))
    again = stage2_from(base, str(tmp_path / "traj"), 1, 2, str(tmp_path / "from"))
    assert again["test_accuracy"] == direct.test_accuracy and again["val_accuracy"] == direct.val_accuracy
    assert again["test_best_epoch"] == direct.test_best_epoch
    w = torch.load(tmp_path / "from" / "checkpoints" / "best.pt", weights_only=False)["joint"]["model"]
    assert all(torch.equal(w[k], v) for k, v in direct.model.state_dict().items())
    with pytest.raises(ValueError, match="method 'schedule'"):
        run(base.replace(method="concat", out=str(tmp_path / "bad")), start={"modality_epochs": [0, 0], "state": {}})


def test_compare_writes_rows_with_both_protocols_and_reuses_runs(tmp_path):
    out = str(tmp_path / "cmp")
    res = ms.compare(["cg-digits"], methods=["unimodal1", "unimodal2", "concat", "schedule"], seeds=[0],
                     out=out, schedule_grid=((0, 1), (0, 2)), overrides=TINY, val="shifted")
    with open(os.path.join(out, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    need = {"dataset", "method", "seed", "test_val_selected", "test_best_epoch", "val", "stage1_epochs_m1",
            "stage1_epochs_m2", "wall_s"}
    assert need <= set(rows[0])
    assert [r["method"] for r in rows] == ["unimodal1", "unimodal2", "concat", "schedule-0-0", "schedule-0-2",
                                           "schedule-1-0", "schedule-1-2"]
    for r in rows:   # the best epoch on test is at least the val-selected checkpoint's test accuracy
        assert float(r["test_best_epoch"]) >= float(r["test_val_selected"]) - 1e-12
        assert r["selected_on"] == "val (shifted)"
    assert [(r["stage1_epochs_m1"], r["stage1_epochs_m2"]) for r in rows[3:]] == [
        ("0", "0"), ("0", "2"), ("1", "0"), ("1", "2")]
    j = json.load(open(os.path.join(out, "results.json")))
    assert len(j["rows"]) == len(rows) and "schedule (best on val)" in res["table"]
    mtime = os.path.getmtime(os.path.join(out, "cg-digits", "seed0", "concat", "result.json"))
    again = ms.compare(["cg-digits"], methods=["concat"], seeds=[0], out=out, overrides=TINY, val="shifted")
    assert os.path.getmtime(os.path.join(out, "cg-digits", "seed0", "concat", "result.json")) == mtime
    assert again["rows"][0]["test_val_selected"] == float(rows[2]["test_val_selected"])
    with pytest.raises(ValueError, match="unknown method"):
        ms.compare(["cg-digits"], methods=["nope"], out=out)


def test_every_method_lands_in_the_compare_table(tmp_path):
    """A tiny run of each method a user would pick instead finishes and gets its row."""
    from multimodal_sched.config import SCHEDULE_METHODS, STRATEGY_METHODS
    methods = ["pid", "mi", *SCHEDULE_METHODS, *STRATEGY_METHODS]
    res = ms.compare(["cg-digits"], methods=methods, seeds=[0], out=str(tmp_path / "all"),
                     overrides={**TINY, "method_options": {}}, jobs=1)
    assert [r["method"] for r in res["rows"]] == methods
    for r in res["rows"]:
        # the row is the run's own result (tiny runs need not beat chance; learning is tested elsewhere)
        saved = json.load(open(os.path.join(str(tmp_path), "all", "cg-digits", "seed0", r["method"], "result.json")))
        assert r["test_val_selected"] == saved["test_accuracy"]
        if r["test_best_epoch"] is not None:                          # (a fallback run has no own Stage II)
            assert r["test_best_epoch"] >= r["test_val_selected"] - 1e-12
        assert f"| {r['method']} |" in res["table"]


def test_a_different_run_in_the_out_folder_is_moved_aside_not_deleted(tmp_path):
    from multimodal_sched.config import CONTROLLER_FIELDS
    from multimodal_sched.experiments._common import run_or_reuse

    base = base_config("cg-digits", 0, overrides=TINY).replace(method="concat")
    out = str(tmp_path / "concat")
    first = run_or_reuse(base, out)
    # a controller-only field does not make a concat run different: reused, nothing moved
    assert "fallback_z" in CONTROLLER_FIELDS and "first_probes" in CONTROLLER_FIELDS and "seed" not in CONTROLLER_FIELDS
    assert run_or_reuse(base.replace(fallback_z=5.0, first_probes=[]), out) == first
    assert not os.path.exists(out + ".replaced-1")
    with pytest.warns(UserWarning, match="moved to"):
        run_or_reuse(base.replace(joint_epochs=1), out)
    kept = json.load(open(os.path.join(out + ".replaced-1", "result.json")))
    assert kept == first                                   # the old run is still there, whole
    assert json.load(open(os.path.join(out, "config.json")))["joint_epochs"] == 1


def test_grid_atoms_intervals_and_spearman(tmp_path):
    out = str(tmp_path / "grid")
    res = ms.grid("cg-digits", 0, out, epochs1="0,2", epochs2=[0, 1], n_boot=20, overrides=TINY)
    rows = list(csv.DictReader(open(os.path.join(out, "grid.csv"))))
    assert [(r["e1"], r["e2"]) for r in rows] == [("0", "0"), ("0", "1"), ("2", "0"), ("2", "1")]
    for r in res["rows"]:
        for a in ("R", "U1", "U2", "S", "I1", "I2"):
            assert r[f"{a}_lo"] <= r[f"{a}_hi"]
        eps = res["meta"]["eps"]
        assert r["imbalance"] == pytest.approx(abs(math.log((max(r["U1"], 0) + eps) / (max(r["U2"], 0) + eps))))
        assert r["test_best_epoch"] >= r["test_val_selected"] - 1e-12
    g = json.load(open(os.path.join(out, "grid.json")))
    assert set(g["spearman"]) == {"test_val_selected", "test_best_epoch"}
    assert set(g["spearman"]["test_val_selected"]) == {"S", "imbalance", "I1", "I2", "R"}
    # the same start point in the grid and in a direct fixed-schedule run
    direct = run(base_config("cg-digits", 0, overrides=TINY).replace(method="schedule", schedule_epochs=[2, 1],
                                                                      out=str(tmp_path / "direct")))
    assert res["rows"][3]["test_val_selected"] == direct.test_accuracy
    with pytest.raises(ValueError, match="epochs1"):
        ms.grid("cg-digits", 0, out, epochs1="a,b")


def test_cli_grid_and_compare_refuse_bad_input(capsys):
    from multimodal_sched.cli import main

    assert main(["grid", "--epochs1=-1,2"]) == 2
    assert main(["compare", "--methods", "nope"]) == 2
