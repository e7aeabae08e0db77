"""Reproducibility from --seed, and the bench's scoring helpers."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import fastpid
from fastpid_bench import problems as pb
from fastpid_bench.cli import main
from fastpid_bench.runner import Measurement, Referee, accurate, mae, measure
from fastpid_bench.suites import fit_exponent


def test_same_seed_same_histograms():
    for gate in pb.GATES:
        a = pb.gate_problem(gate, samples=5000, seed=7)
        b = pb.gate_problem(gate, samples=5000, seed=7)
        assert a.digest() == b.digest()
        np.testing.assert_array_equal(a.counts, b.counts)
        assert a.counts.sum() == 5000
    g1 = pb.gaussian_problem(8, 4, samples=5000, seed=7)
    g2 = pb.gaussian_problem(8, 4, samples=5000, seed=7)
    g3 = pb.gaussian_problem(8, 4, samples=5000, seed=8)
    assert g1.counts.shape == (8, 8, 4) and g1.counts.sum() == 5000
    assert g1.digest() == g2.digest() != g3.digest()
    r1 = pb.random_problem(5, 6, 3, seed=1, batch=4, samples=500)
    r2 = pb.random_problem(5, 6, 3, seed=1, batch=4, samples=500)
    assert r1.counts.shape == (4, 5, 6, 3) and r1.digest() == r2.digest()
    assert not np.array_equal(r1.counts[0], r1.counts[1])


def test_gate_histograms_match_the_gate():
    xor = pb.gate_problem("xor", samples=4000, seed=0).counts
    assert xor.shape == (2, 2, 2)
    assert xor[0, 0, 1] == xor[1, 1, 1] == xor[0, 1, 0] == xor[1, 0, 0] == 0
    copy = pb.gate_problem("copy", samples=4000, seed=0).counts
    assert copy.shape == (2, 2, 4)
    rdn = pb.gate_problem("rdn", samples=4000, seed=0).counts
    assert rdn[0, 1].sum() == rdn[1, 0].sum() == 0
    assert pb.gate_problem("and", samples=10, seed=0).truth == fastpid.distributions.KNOWN["and_"]


def _run(tmp_path, name, seed):
    out = tmp_path / name
    argv = ["--quick", "--no-progress", "--no-plots", "--seed", str(seed), "--methods", "analytic,fastpid",
            "--reference", "cvx-clarabel", "--out", str(out), "gaussian"]
    assert main(argv) == 0
    with open(out / "results.json") as fh:
        return json.load(fh)


def test_same_seed_same_atoms(tmp_path):
    a, b, c = _run(tmp_path, "a", 11), _run(tmp_path, "b", 11), _run(tmp_path, "c", 12)
    assert [p["digest"] for p in a["problems"]] == [p["digest"] for p in b["problems"]]
    assert [p["digest"] for p in a["problems"]] != [p["digest"] for p in c["problems"]]
    for ra, rb in zip(a["rows"], b["rows"]):
        for k in ("R", "U1", "U2", "S", "mae", "iterations"):
            assert ra[k] == rb[k], (k, ra, rb)


def test_fastpid_gaussian_init_is_seeded():
    P = pb.gaussian_problem(4, 3, samples=3000, seed=0).counts
    m1 = measure(P, "fastpid", seed=5, extra={"init": "gaussian", "max_iter": 30})
    m2 = measure(P, "fastpid", seed=5, extra={"init": "gaussian", "max_iter": 30})
    assert m1.error is None and m1.atoms == m2.atoms


def test_mae_and_exponent():
    assert mae({"R": 1.0, "U1": 0.0, "U2": 0.0, "S": 0.0}, {"R": 0.0, "U1": 0.0, "U2": 0.0, "S": 0.5}) == 0.375
    assert math.isnan(mae({}, {"R": 0.0}))
    sizes = [10, 100, 1000, 10000]
    assert fit_exponent(sizes, [2e-3 * s**1.5 for s in sizes]) == pytest.approx(1.5)
    assert math.isnan(fit_exponent([10], [1.0]))


def test_reference_is_never_the_method_scored():
    P = fastpid.distributions.and_()
    ref = Referee(P, order=("cvx-clarabel", "cvx-scs"))
    ref.add(measure(P, "cvx-clarabel"))
    label, m = ref.reference("cvx-clarabel")
    assert label.startswith("cvx-scs") and m.method == "cvx-scs"
    label, m = ref.reference("fastpid")
    assert label == "cvx-clarabel" and accurate(m)
    assert ref.extra_runs == ["cvx-scs"]


def test_failed_solves_are_recorded_not_hidden():
    m = measure(np.ones((2, 2, 2)), "fastpid", extra={"max_iter": -1})
    assert m.error and m.error.startswith("ValueError") and m.status == "error" and not m.ok
    assert not accurate(Measurement(method="exact", options={}, atoms={"R": 0, "U1": 0, "U2": 0, "S": 0},
                                    gap=1e-3, violation=0.0))
