"""benchmarks/fallback_rules.py: both fallback rules' outcomes from one finished pid run."""
from __future__ import annotations

import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("fallback_rules", os.path.join(ROOT, "benchmarks", "fallback_rules.py"))
fr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fr)


def _fake(tmp_path, name, b, c, kept_acc, joint_acc, z=2.0):
    d = tmp_path / name
    (d / "fallback").mkdir(parents=True)
    fell = c - b > z * (b + c) ** 0.5 and c > b
    res = {"test_accuracy": joint_acc if fell else kept_acc,
           "selected": {"phase": "fallback" if fell else "stage2"},
           "fallback": {"only_scheduled_right": b, "only_joint_right": c, "fell_back": fell,
                        "fallback_z": z, "fallback_rule": "worse"}}
    (d / "result.json").write_text(json.dumps(res))
    (d / "fallback" / "result.json").write_text(json.dumps({"test_accuracy": joint_acc}))
    return str(d)


@pytest.mark.parametrize("b, c, worse, not_better", [
    (8, 5, 0.80, 0.90),      # a tie on val: "worse" keeps the schedule, "not-better" gives way
    (5, 40, 0.90, 0.90),     # joint clearly better: both fall back
    (60, 10, 0.80, 0.80),    # schedule clearly better: both keep it
    (0, 0, 0.80, 0.90),      # identical predictions: no evidence either way
])
def test_both_rules_follow_from_one_run(tmp_path, b, c, worse, not_better):
    o = fr.outcomes(_fake(tmp_path, "r", b, c, kept_acc=0.80, joint_acc=0.90), z=2.0)
    assert (o["worse"], o["not-better"], o["joint"]) == (worse, not_better, 0.90)


def test_a_run_without_its_fallback_check_is_refused(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "result.json").write_text(json.dumps({"test_accuracy": 0.5, "selected": {"phase": "stage2"}, "fallback": None}))
    with pytest.raises(ValueError, match="no fallback check"):
        fr.outcomes(str(d), 2.0)


def test_a_rule_that_would_keep_a_schedule_the_run_dropped_is_refused(tmp_path):
    d = _fake(tmp_path, "r", 5, 40, kept_acc=0.80, joint_acc=0.90)   # fell back at z = 2
    with pytest.raises(ValueError, match="not recorded"):
        fr.outcomes(d, z=100.0)                                     # "worse" would keep it there
