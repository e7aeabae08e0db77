"""`fastpid-bench --quick all` end to end: files exist, parse, hold every method, finite numbers."""
from __future__ import annotations

import csv
import json
import math

import pytest

from fastpid_bench.cli import main
from fastpid_bench.runner import METHODS

# The exact solver is measured in test_quick_all_with_exact (slow while its
# Numba kernel cannot be cached across processes); here the reference is CLARABEL.
FAST_METHODS = ["analytic", "fastpid", "cvx-clarabel", "cvx-scs"]
PNGS = ["gates_atoms.png", "gates_mae.png", "gaussian_atoms.png", "gaussian_mae.png",
        "gaussian_time_vs_size.png", "scaling_time_vs_size.png", "ablation.png"]


def _quick_all(out, methods, reference=None):
    argv = ["--quick", "--no-progress", "--seed", "3", "--methods", ",".join(methods), "--out", str(out)]
    if reference:
        argv += ["--reference", reference]
    assert main(argv + ["all"]) == 0
    with open(out / "results.json") as fh:
        doc = json.load(fh)
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return doc, rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    doc, rows = _quick_all(out, FAST_METHODS, reference="cvx-clarabel,cvx-scs")
    return out, doc, rows


def _check_run(out, doc, rows, methods):
    for name in ["results.csv", "results.json"] + PNGS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in PNGS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(rows) == len(doc["rows"]) > 0
    benches = {"gates", "gaussian", "ablation", "scaling"}
    assert {r["bench"] for r in rows} == benches
    for bench in benches - {"ablation"}:
        assert {r["method"] for r in rows if r["bench"] == bench} == set(methods), bench
    assert {r["method"] for r in rows if r["bench"] == "ablation" and r["variant"] != "reference"} == {"fastpid"}
    for r in doc["rows"]:
        assert r["error"] == "", r
        for key in ("R", "U1", "U2", "S", "I", "time_s", "violation", "iterations", "converged"):
            assert isinstance(r[key], (int, float)) and math.isfinite(r[key]), (key, r)
        assert r["time_s"] > 0
        assert r["S"] <= r["I"] + 1e-9
        if r["method"] != "fastpid":  # FastPID's q may be infeasible, so its S is not bounded below
            assert r["S"] >= -1e-3 and min(r["R"], r["U1"], r["U2"]) >= -1e-3, r
        if r["bench"] in ("gates", "gaussian") or (r["bench"] == "ablation" and r["variant"] != "reference"):
            assert math.isfinite(r["mae"]) and r["mae"] >= 0, r
            assert r["reference"] and not r["reference"].startswith(r["method"]), r
        if r["bench"] == "gates":
            assert math.isfinite(r["mae_gt"])
        if r["bench"] == "scaling" and r["variant"] == "batched":
            assert r["batch"] > 1 and r["throughput_per_s"] > 0
    # the many-label shapes: every method solved each of them once
    for m in methods:
        shapes = [(r["n1"], r["n2"], r["ny"]) for r in doc["rows"]
                  if r["bench"] == "scaling" and r["variant"] == "labels" and r["method"] == m]
        assert shapes == [(4, 4, 32), (2, 2, 256)], m
    # the CSV holds the same numbers as the JSON
    for c, j in zip(rows, doc["rows"]):
        assert c["method"] == j["method"]
        assert math.isclose(float(c["S"]), j["S"], rel_tol=1e-12, abs_tol=1e-15)
    # every scaling method has a fitted growth exponent
    for m in methods:
        exps = {r["exponent"] for r in doc["rows"] if r["bench"] == "scaling" and r["method"] == m
                and r["variant"] == "single"}
        assert len(exps) == 1 and math.isfinite(exps.pop())


def test_quick_all_outputs(quick_run):
    out, doc, rows = quick_run
    _check_run(out, doc, rows, FAST_METHODS)


def test_quick_all_metadata(quick_run):
    _, doc, _ = quick_run
    assert doc["seed"] == 3
    assert doc["command_line"].startswith("fastpid-bench --quick")
    assert "all" in doc["argv"]
    m = doc["machine"]
    assert m["cpu_count"] >= 1 and m["python"]
    assert m["versions"]["numpy"] and m["versions"]["fastpid"]
    assert set(doc["method_options"]) == set(FAST_METHODS)
    assert doc["method_options"]["cvx-scs"]["solver"] == "SCS"
    assert "exact" in doc["reference_policy"] and "cvx-clarabel" in doc["reference_policy"]
    assert doc["references_used"] and all(r.startswith("cvx") for r in doc["references_used"])
    assert len(doc["problems"]) > 0 and all(len(p["digest"]) == 64 for p in doc["problems"])


def test_quick_all_ablation_sweeps(quick_run):
    """Every ablation setting ran; without the early stop FastPID runs exactly max_iter steps."""
    _, doc, _ = quick_run
    variants = [r["variant"] for r in doc["rows"] if r["bench"] == "ablation"]
    assert variants[0] == "reference"
    for prefix in ("init:init=analytic", "init:init=uniform", "init:init=gaussian", "iters:max_iter=10",
                   "iters(no early stop):max_iter=200", "sinkhorn:sinkhorn_iters=1"):
        assert prefix in variants, prefix
    for r in doc["rows"]:
        if r["variant"].startswith("iters(no early stop)"):
            assert r["iterations"] == int(r["variant"].split("=")[1])
        elif r["variant"].startswith("iters:"):
            assert 1 <= r["iterations"] <= int(r["variant"].split("=")[1])


def test_quick_all_gates_are_right(quick_run):
    """The conic solvers recover the known gate atoms from 20,000 samples."""
    _, doc, _ = quick_run
    for r in doc["rows"]:
        if r["bench"] == "gates" and r["method"].startswith("cvx"):
            assert r["mae_gt"] < 0.02, r


@pytest.mark.slow
def test_quick_all_with_exact(tmp_path):
    """Default methods (exact included); slow only while the exact kernel recompiles per process."""
    doc, rows = _quick_all(tmp_path, list(METHODS))
    _check_run(tmp_path, doc, rows, list(METHODS))
    assert any(r["reference"] == "exact" for r in doc["rows"])
