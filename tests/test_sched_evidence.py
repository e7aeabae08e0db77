"""Evidence-based decisions, options that act in time, val patience, rollback, fallback, presets, projection."""
import json
import os

import numpy as np
import pytest
import torch

from multimodal_sched import RunConfig, run
from multimodal_sched.config import PRESETS
from multimodal_sched.controller import Controller


def obs(U1, U2, S, iv=None, R=0.1):
    d = {"R": R, "U1": U1, "U2": U2, "S": S}
    if iv is not None:
        d["interval"] = iv
    return d


def ev(**kw):
    return Controller(decision_rule="evidence", probe_every=1, max_unimodal_epochs=100, **kw)


# ------------------------------------------------------------------ uniqueness with intervals
def test_overlapping_intervals_make_no_decision_but_the_paper_rule_pauses():
    o = obs(1.0, 0.5, 0.1, {"U1": [0.6, 1.4], "U2": [0.3, 0.7], "S": [0.05, 0.15]})   # point ratio 2 > 1.5
    d = ev(tau_u=1.5).observe(o, 1)
    assert d.modalities == (1, 2) and d.rule == "no_evidence"      # 0.6 < 1.5 * 0.7: no evidence
    assert d.evidence["uniqueness"]["U1_interval"] == [0.6, 1.4]
    assert d.evidence["uniqueness"]["U2_interval"] == [0.3, 0.7]
    p = Controller(decision_rule="paper", tau_u=1.5, probe_every=1).observe(o, 1)
    assert p.train_modality == 2 and p.rule == "uniqueness"


def test_clear_separation_pauses_the_strong_modality():
    d = ev(tau_u=1.5).observe(obs(1.0, 0.2, 0.1, {"U1": [0.9, 1.1], "U2": [0.1, 0.3], "S": [0, 0.2]}), 1)
    assert d.train_modality == 2 and d.rule == "uniqueness" and "lo(U1)=0.9" in d.reason   # 0.9 > 1.5*0.3
    d = ev(tau_u=1.5).observe(obs(0.2, 1.0, 0.1, {"U1": [0.1, 0.3], "U2": [0.9, 1.1], "S": [0, 0.2]}), 1)
    assert d.train_modality == 1
    # the boundary: lo(U1) exactly tau_u * hi(U2) is not evidence
    d = ev(tau_u=2.0, eps=1e-12).observe(obs(1.0, 0.2, 0.1, {"U1": [0.6, 1.4], "U2": [0.1, 0.3]}), 1)
    assert d.modalities == (1, 2)


def test_paused_modality_resumes_when_the_point_ratio_is_back_within_tau():
    c = ev(tau_u=1.5)
    c.observe(obs(1.0, 0.2, 0.1, {"U1": [0.9, 1.1], "U2": [0.1, 0.3]}), 1)
    d = c.observe(obs(0.5, 0.45, 0.1, {"U1": [0.2, 0.8], "U2": [0.2, 0.7]}), 2)
    assert d.modalities == (1, 2) and d.rule == "balanced"
    c = ev(tau_u=1.5)
    c.observe(obs(1.0, 0.2, 0.1, {"U1": [0.9, 1.1], "U2": [0.1, 0.3]}), 1)
    d = c.observe(obs(0.9, 0.4, 0.1, {"U1": [0.2, 1.8], "U2": [0.1, 0.7]}), 2)   # ratio 2.25: still paused
    assert d.train_modality == 2 and d.rule == "no_evidence"


def test_without_intervals_the_bounds_are_the_estimates():
    d = ev(tau_u=1.5).observe(obs(1.0, 0.5, 0.1), 1)
    assert d.train_modality == 2 and d.evidence["uniqueness"]["intervals"] is False


# ------------------------------------------------------------------ synergy peak with intervals
def test_synergy_drop_inside_the_interval_needs_confirmation():
    c = ev(lambda_s=0.8, confirm_probes=2)
    c.observe(obs(0.5, 0.5, 0.30, {"S": [0.25, 0.35]}), 1)                 # peak 0.30, lo 0.25
    d = c.observe(obs(0.5, 0.5, 0.22, {"S": [0.15, 0.29]}), 2)             # below 0.24, hi 0.29 not below
    assert not d.start_joint and d.evidence["synergy"]["consecutive_drops"] == 1
    d = c.observe(obs(0.5, 0.5, 0.23, {"S": [0.16, 0.30]}), 3)             # second drop in a row
    assert d.start_joint and d.rule == "synergy_peak" and "2 consecutive" in d.reason
    assert c.peak_epoch == 1


def test_a_recovery_resets_the_drop_count():
    c = ev(lambda_s=0.8, confirm_probes=2)
    c.observe(obs(0.5, 0.5, 0.30, {"S": [0.25, 0.35]}), 1)
    assert not c.observe(obs(0.5, 0.5, 0.22, {"S": [0.15, 0.29]}), 2).start_joint
    assert not c.observe(obs(0.5, 0.5, 0.28, {"S": [0.2, 0.33]}), 3).start_joint   # back above 0.24
    assert not c.observe(obs(0.5, 0.5, 0.22, {"S": [0.15, 0.29]}), 4).start_joint


def test_a_drop_beyond_both_intervals_fires_at_once():
    c = ev(lambda_s=0.8, confirm_probes=5)
    c.observe(obs(0.5, 0.5, 0.30, {"S": [0.27, 0.33]}), 1)
    d = c.observe(obs(0.5, 0.5, 0.10, {"S": [0.05, 0.15]}), 2)             # hi 0.15 < 0.24 and < 0.27
    assert d.start_joint and d.evidence["synergy"]["peak_interval"] == [0.27, 0.33]
    assert d.evidence["synergy"]["S_interval"] == [0.05, 0.15]


def test_a_drop_inside_a_wide_peak_interval_is_not_clear():
    c = ev(lambda_s=0.8, confirm_probes=5)
    c.observe(obs(0.5, 0.5, 0.30, {"S": [0.10, 0.50]}), 1)
    d = c.observe(obs(0.5, 0.5, 0.15, {"S": [0.12, 0.20]}), 2)             # hi 0.20 < 0.24 but not < lo 0.10
    assert not d.start_joint


def test_a_peak_whose_interval_reaches_zero_is_no_peak():
    c = ev(lambda_s=0.8, confirm_probes=1)
    c.observe(obs(0.5, 0.5, 0.05, {"S": [-0.02, 0.12]}), 1)
    assert not c.observe(obs(0.5, 0.5, 0.0, {"S": [-0.05, 0.03]}), 2).start_joint
    p = Controller(decision_rule="paper", probe_every=1)
    p.observe(obs(0.5, 0.5, 0.05), 1)
    assert p.observe(obs(0.5, 0.5, 0.0), 2).start_joint


# ------------------------------------------------------------------ options that act in time
def test_the_epoch0_probe_sets_no_synergy_peak():
    for rule in ("paper", "evidence"):
        c = Controller(decision_rule=rule, first_probes=(0,), probe_every=1, confirm_probes=1)
        c.observe(obs(0.5, 0.5, 0.9, {"S": [0.8, 1.0]}), 0)       # untrained: large (biased) synergy
        assert c.best_synergy == -1 and c.peak_epoch is None
        assert not c.observe(obs(0.5, 0.5, 0.2, {"S": [0.15, 0.25]}), 1).start_joint
        assert c.peak_epoch == 1


def test_first_probes_and_start_modality_and_public_code_mode():
    c = Controller(first_probes=(0, 1), probe_every=5, max_unimodal_epochs=12)
    assert [e for e in range(0, 13) if c.due(e)] == [0, 1, 5, 10, 12]
    assert Controller(start_modality=2).decision.modalities == (2,)
    # public code: both train, the first switch leaves one modality, which keeps training when balanced
    c = Controller(when_balanced="keep", start_modality="both", probe_every=1, stop_after_switches=2)
    assert c.decision.modalities == (1, 2)
    assert c.observe(obs(1.0, 0.2, 0.1), 1).modalities == (2,)
    assert c.observe(obs(0.5, 0.5, 0.1), 2).modalities == (2,)
    d = c.observe(obs(0.2, 1.0, 0.1), 3)
    assert d.start_joint and d.rule == "stop_after_switches" and c.switches == 2


def test_val_patience_pauses_a_stalled_modality_then_starts_stage2():
    c = Controller(probe_every=10, max_unimodal_epochs=100, val_patience=2)
    for e, (a1, a2) in enumerate([(0.5, 0.3), (0.6, 0.35), (0.6, 0.4)], start=1):
        c.record_val(1, a1)
        c.record_val(2, a2)
        assert not c.due(e)
    c.record_val(1, 0.59)
    c.record_val(2, 0.45)
    assert c.due(4)                                 # modality 1: two epochs without gain
    d = c.observe(obs(0.5, 0.5, 0.1), 4)
    assert d.modalities == (2,) and d.rule == "val_patience" and "modality 1 stopped improving" in d.reason
    assert d.evidence["val_patience"]["best_val"] == [0.6, 0.45]
    c.record_val(2, 0.44)
    c.record_val(2, 0.45)                           # no gain (min_delta 0: must exceed 0.45)
    assert c.due(6)
    d = c.observe(obs(0.5, 0.5, 0.1), 6)
    assert d.start_joint and d.rule == "val_patience"
    assert c.modality_epochs == [4, 6]


def test_new_options_survive_state_dict():
    c = ev(val_patience=2, first_probes=(0,))
    c.observe(obs(0.5, 0.5, 0.3, {"S": [0.2, 0.4]}), 0)
    c.record_val(1, 0.5)
    c2 = ev(val_patience=2, first_probes=(0,))
    c2.load_state_dict(json.loads(json.dumps(c.state_dict())))
    assert c2.state_dict() == c.state_dict()
    o = obs(0.5, 0.5, 0.2, {"S": [0.15, 0.25]})
    assert c.observe(o, 1) == c2.observe(o, 1)


def test_bad_options_are_refused():
    for kw, msg in [(dict(decision_rule="vibes"), "decision_rule"), (dict(start_modality=3), "start_modality"),
                    (dict(confirm_probes=0), "confirm_probes"), (dict(first_probes=[-1]), "first_probes"),
                    (dict(val_patience=0), "val_patience"), (dict(stop_after_switches=0), "stop_after_switches")]:
        with pytest.raises(ValueError, match=msg):
            Controller(**kw)
    with pytest.raises(ValueError, match="lo <= hi"):
        ev().observe(obs(0.5, 0.5, 0.1, {"U1": [0.6, 0.4]}), 1)


# ------------------------------------------------------------------ in runs
TINY = dict(dataset="cg-digits", dataset_options={"n_train": 200}, width=4, batch_size=64,
            max_unimodal_epochs=6, probe_every=2, stage2_epochs=2, joint_epochs=2, k=5, pca_dims=3,
            pid_method="analytic", progress=False, plots=False, fallback=False)


def events(d, kind=None):
    with open(os.path.join(d, "events.jsonl")) as f:
        evs = [json.loads(x) for x in f]
    return [e for e in evs if kind is None or e["type"] == kind]


def test_epoch0_probe_sees_the_untrained_encoders_and_every_decision_names_its_rule(tmp_path):
    res = run(RunConfig(**TINY, out=str(tmp_path / "r")))
    probes = events(res.run_dir, "probe")
    assert probes[0]["epoch"] == 0 and probes[0]["modality_epochs"] == [0, 0]
    assert [p["epoch"] for p in probes][:2] == [0, 1]
    assert all(p["decision"]["rule"] and "uniqueness" in p["decision"]["evidence"] for p in probes)
    assert all("synergy" in p["decision"]["evidence"] for p in probes)
    no = run(RunConfig(**TINY, first_probes=[], out=str(tmp_path / "n")))
    assert events(no.run_dir, "probe")[0]["epoch"] == 2


def test_val_patience_restores_the_best_val_encoder(tmp_path):
    res = run(RunConfig(**{**TINY, "val_patience": 1, "max_unimodal_epochs": 8, "lambda_s": 0.01},
                         out=str(tmp_path / "r")))
    rest = events(res.run_dir, "restore")
    assert rest, "val_patience=1 must stall a modality within 8 epochs"
    stage1 = events(res.run_dir, "epoch")
    for r in rest:
        m = r["modality"]
        accs = [e[f"m{m}"]["val_acc"] for e in stage1 if e["phase"] == "stage1" and f"m{m}" in e
                and e["epoch"] <= r["epoch"]]
        assert r["best_val"] == max(accs)
    probe = [p for p in events(res.run_dir, "probe") if p["decision"]["rule"] == "val_patience"]
    assert probe
    # the checkpoint written at the end of the restoring epoch holds the best-val encoder and head
    import multimodal_sched as ms
    r, part = rest[0], tmp_path / "part"
    with pytest.raises(ms.RunInterrupted):
        run(RunConfig(**{**TINY, "val_patience": 1, "max_unimodal_epochs": 8, "lambda_s": 0.01},
                      out=str(part)), interrupt_after=r["epoch"])
    last = torch.load(part / "checkpoints" / "last.pt", weights_only=False)["model"]
    best = torch.load(part / "checkpoints" / "best.pt", weights_only=False)[f"m{r['modality']}"]
    for name in ("encoder", "head"):
        for k, v in best[name].items():
            assert torch.equal(last[f"{name}{r['modality']}.{k}"], v), (name, k)


def test_rollback_restores_the_encoders_of_the_synergy_peak(tmp_path):
    kw = dict(TINY, decision_rule="paper", lambda_s=0.999, first_probes=[0, 1], probe_every=1, val_patience=None)
    kw["stage2_epochs"] = 1
    res = run(RunConfig(**kw, rollback=True, out=str(tmp_path / "r")))
    rb = events(res.run_dir, "rollback")
    probes = events(res.run_dir, "probe")
    assert probes[-1]["decision"]["rule"] == "synergy_peak"
    assert len(rb) == 1 and rb[0]["to_epoch"] == probes[-1]["decision"]["evidence"]["synergy"]["peak_epoch"]
    best = torch.load(os.path.join(res.run_dir, "checkpoints", "best.pt"), weights_only=False)
    assert "peak" in best
    # without rollback the Stage II start differs
    no = run(RunConfig(**kw, rollback=False, out=str(tmp_path / "n")))
    assert not events(no.run_dir, "rollback")
    assert no.stage1_epochs == res.stage1_epochs
    assert any(not torch.equal(a, b) for a, b in zip(res.model.state_dict().values(), no.model.state_dict().values()))


def test_fallback_keeps_plain_joint_training_when_clearly_better_on_val(tmp_path):
    # Stage I of 1 epoch on modality 2 only and 1 Stage II epoch vs 6 joint epochs: joint wins on val
    kw = dict(TINY, dataset="synthetic", dataset_options={"n_train": 600}, width=8, start_modality=2,
              first_probes=[], max_unimodal_epochs=1, stage2_epochs=1, joint_epochs=6, lr_stage2=1e-4, fallback=True)
    res = run(RunConfig(**kw, out=str(tmp_path / "r")))
    fb = res.fallback
    assert fb["fell_back"] and res.selected["phase"] == "fallback"
    assert fb["only_joint_right"] - fb["only_scheduled_right"] > 2 * np.sqrt(fb["only_joint_right"] + fb["only_scheduled_right"])
    with open(os.path.join(res.run_dir, "fallback", "result.json")) as f:
        joint = json.load(f)
    assert res.test_accuracy == pytest.approx(joint["test_accuracy"])
    assert res.val_accuracy == pytest.approx(joint["val_accuracy"]) == pytest.approx(fb["joint_val"])
    assert events(res.run_dir, "fallback")[0]["fell_back"] is True
    # an impossible threshold keeps the scheduled model
    keep = run(RunConfig(**kw, fallback_z=1e6, out=str(tmp_path / "k")))
    assert not keep.fallback["fell_back"] and keep.selected["phase"] == "stage2"
    assert keep.test_accuracy != pytest.approx(res.test_accuracy)
    # "not-better" puts the burden on the schedule: the same worse schedule falls back, and so does
    # one val cannot tell apart (threshold out of reach); a schedule clearly better on val is kept
    nb = run(RunConfig(**kw, fallback_rule="not-better", out=str(tmp_path / "nb")))
    assert nb.fallback["fell_back"] and nb.fallback["fallback_rule"] == "not-better"
    assert nb.test_accuracy == pytest.approx(res.test_accuracy)
    good = dict(kw, max_unimodal_epochs=4, stage2_epochs=6, lr_stage2=RunConfig().lr_stage2, joint_epochs=1)
    g = run(RunConfig(**good, fallback_rule="not-better", out=str(tmp_path / "g")))
    gb, gc = g.fallback["only_scheduled_right"], g.fallback["only_joint_right"]
    assert gb - gc > 2 * np.sqrt(gb + gc)
    assert not g.fallback["fell_back"] and g.selected["phase"] == "stage2"
    g_far = run(RunConfig(**good, fallback_rule="not-better", fallback_z=1e6, out=str(tmp_path / "gf")))
    assert g_far.fallback["fell_back"] and g_far.selected["phase"] == "fallback"


def test_presets_and_projection_layer(tmp_path):
    p = RunConfig.from_preset("paper")
    assert (p.tau_u, p.lambda_s, p.probe_every, p.decision_rule, p.projection_dim) == (5.0, 0.95, 5, "paper", 64)
    assert p.stage2 == "uniform" and p.first_probes == [] and not p.fallback
    s = RunConfig.from_preset("crema-sweep")
    assert (s.tau_u, s.lambda_s) == (1.5, 0.8) and s == RunConfig()
    assert RunConfig.from_preset("paper", tau_u=3.0).tau_u == 3.0
    with pytest.raises(ValueError, match="unknown preset"):
        RunConfig.from_preset("best")
    assert set(PRESETS) == {"paper", "crema-sweep"}
    res = run(RunConfig(**{**TINY, "projection_dim": 7}, out=str(tmp_path / "p")))
    m = res.model
    assert m.encoder1.out_dim == 7 and m.head1.in_features == 7 and m.fusion.fc.in_features == 14
    x1, x2, _ = next(iter(torch.utils.data.DataLoader(
        __import__("multimodal_sched").make_cg_digits(seed=0, n_train=200).splits["val"], batch_size=8)))
    m.eval()
    with torch.no_grad():
        z = m.encoder1(x1)
        assert z.shape == (8, 7) and (z >= 0).all()          # the probe and the heads read the projection
        assert torch.allclose(m.head1(z), m(x1, x2)[1])


def test_cli_preset(tmp_path, capsys):
    from multimodal_sched.cli import main

    out = tmp_path / "c"
    cfg = RunConfig(**{**TINY, "max_unimodal_epochs": 2})
    import multimodal_sched as ms
    path = tmp_path / "cfg.json"
    ms.save_config(cfg, str(path))
    assert main(["run", "--config", str(path), "--preset", "paper", "--out", str(out)]) == 0
    with open(out / "config.json") as f:
        saved = json.load(f)
    assert saved["tau_u"] == 5.0 and saved["projection_dim"] == 64 and saved["max_unimodal_epochs"] == 2
    assert main(["run", "--preset", "nope"]) == 2


def test_plot_atoms_error_bars_from_intervals(tmp_path):
    from multimodal_sched.plots import atom_series, plot_atoms

    probes = [{"epoch": 0, "U1": 0.5, "U2": 0.2, "S": 0.3, "R": 0.1, "interval": {"S": [0.2, 0.45]},
               "decision": {"rule": "uniqueness", "modalities": [2], "start_joint": False}},
              {"epoch": 1, "U1": 0.4, "U2": 0.3, "S": 0.1, "R": 0.1, "interval": None,
               "decision": {"rule": "synergy_peak", "modalities": [], "start_joint": True}}]
    s = atom_series(probes)
    assert set(s) == {"R", "U1", "U2", "S"}
    x, y, lo, hi = s["S"]
    assert x == [0, 1] and y == [0.3, 0.1]
    assert lo == pytest.approx([0.1, 0.0]) and hi == pytest.approx([0.15, 0.0])
    pytest.importorskip("matplotlib")
    path = plot_atoms(probes, str(tmp_path / "a.png"))
    assert os.path.getsize(path) > 1000


def test_a_request_for_a_stalled_modality_is_no_switch():
    c = Controller(probe_every=1, val_patience=1, when_balanced="keep", start_modality=1, stop_after_switches=1)
    c.record_val(1, 0.5)
    c.record_val(1, 0.4)                              # modality 1 stalls
    d = c.observe(obs(1.0, 0.2, 0.1), 1)              # asks for modality 2: allowed, one switch
    assert c.switches == 1 and d.start_joint and d.rule == "stop_after_switches"
    c = Controller(probe_every=1, val_patience=1, when_balanced="keep", start_modality=2, stop_after_switches=1)
    c.record_val(1, 0.5)
    c.record_val(1, 0.4)
    d = c.observe(obs(0.2, 1.0, 0.1), 1)              # asks for stalled modality 1: no switch
    assert c.switches == 0 and d.modalities == (2,) and not d.start_joint and "not a switch" in d.reason


def test_probe_on_training_samples_is_an_option_and_is_labelled(tmp_path):
    """probe_data="train" (the authors' public code) embeds a fixed seeded subset of the
    training split, the same samples at every probe, and every probe event says so."""
    from multimodal_sched.data import build_dataset
    from multimodal_sched.runner import probe_dataset

    kw = {**TINY, "probe_data": "train", "probe_train_samples": 150, "probe_cache": True}
    res = run(RunConfig(**kw, out=str(tmp_path / "t")))
    probes = events(res.run_dir, "probe")
    assert probes and all(p["probe_data"] == "train" and p["n_probe"] == 150 for p in probes)
    cfg = RunConfig(**kw)
    data, _ = build_dataset(cfg)
    sub = probe_dataset(cfg, data)
    idx = np.asarray(sub.indices)
    assert len(idx) == 150 and np.all(np.diff(idx) > 0) and idx.max() < len(data.splits["train"])
    y_train = np.array([int(data.splits["train"][i][2]) for i in idx])
    saved = [np.load(os.path.join(res.run_dir, "probe_cache", f)) for f in
             sorted(os.listdir(os.path.join(res.run_dir, "probe_cache")))]
    assert saved and all(np.array_equal(s["y"], y_train) for s in saved)   # the same training samples each time
    other = np.asarray(probe_dataset(RunConfig(**{**kw, "seed": 1}), data).indices)
    assert not np.array_equal(other, idx)
    full = probe_dataset(RunConfig(**{**kw, "probe_train_samples": 10_000}), data)
    assert len(full) == len(data.splits["train"])
    default = run(RunConfig(**TINY, out=str(tmp_path / "p")))
    n_probe = len(build_dataset(RunConfig(**TINY))[0].splits["probe"])
    assert all(p["probe_data"] == "probe" and p["n_probe"] == n_probe for p in events(default.run_dir, "probe"))
    for bad, msg in [(dict(probe_data="val"), "probe_data"), (dict(probe_train_samples=1), "probe_train_samples"),
                     (dict(probe_train_samples=True), "probe_train_samples")]:
        with pytest.raises(ValueError, match=msg):
            RunConfig(**{**TINY, **bad}).validate()
