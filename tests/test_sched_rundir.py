"""Run directories never lose or mix data: damaged folders are refused in one line, nothing is overwritten.

A process killed mid-run (SIGKILL) is simulated by ``interrupt_after`` (state checkpointed at an epoch
boundary) followed by the damage a kill or a hand edit leaves: truncated or deleted files.
"""
import dataclasses
import json
import os

import pytest
import torch

import multimodal_sched as ms
from multimodal_sched import RunConfig, run
from multimodal_sched.cli import main
from multimodal_sched.rundir import RunDirError

TINY = dict(dataset="synthetic", dataset_options={"n_train": 128}, width=4, batch_size=64, max_unimodal_epochs=4,
            probe_every=2, stage2_epochs=2, k=4, pca_dims=2, pid_method="analytic", progress=False, plots=False)


def _events(d):
    with open(os.path.join(d, "events.jsonl")) as f:
        return [json.loads(line) for line in f]


def _strip(evs):
    return [{k: v for k, v in e.items() if k not in ("run_dir", "wall_time_s")} for e in evs]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    d = tmp_path_factory.mktemp("full") / "run"
    return run(RunConfig(**TINY, out=str(d)))


@pytest.fixture
def killed(tmp_path):
    """A run stopped after 3 epochs, as SIGKILL would leave it at an epoch boundary."""
    d = tmp_path / "part"
    with pytest.raises(ms.RunInterrupted):
        run(RunConfig(**TINY, out=str(d)), interrupt_after=3)
    return d


def _refused(d, match):
    with pytest.raises(RunDirError, match=match) as e:
        run(None, resume=str(d))
    assert "\n" not in str(e.value) and str(d) in str(e.value)


# ---------------------------------------------------------------------- what a kill leaves
def test_partial_last_line_after_the_checkpoint_is_dropped_and_the_run_is_exact(killed, full):
    with open(killed / "events.jsonl", "a") as f:
        f.write('{"type": "epoch", "phase": "stage1", "ep')      # killed while writing the next event
    res = run(None, resume=str(killed))
    assert _strip(_events(killed)) == _strip(_events(full.run_dir))   # every line whole, none glued
    assert res.test_accuracy == full.test_accuracy
    for (k, a), b in zip(full.model.state_dict().items(), res.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_events_written_after_the_checkpoint_are_replaced_not_duplicated(killed, full):
    with open(killed / "events.jsonl", "a") as f:
        f.write(json.dumps({"type": "epoch", "phase": "stage1", "epoch": 99}) + "\n")
    run(None, resume=str(killed))
    assert _strip(_events(killed)) == _strip(_events(full.run_dir))


def test_no_file_is_left_half_written(killed):
    names = sorted(os.listdir(killed)) + sorted(os.listdir(killed / "checkpoints"))
    assert not [n for n in names if ".tmp" in n]


# ------------------------------------------------------------------------- damaged folders
def test_lost_complete_events_are_refused(killed):
    lines = (killed / "events.jsonl").read_text().splitlines(keepends=True)
    (killed / "events.jsonl").write_text("".join(lines[:-2]))
    _refused(killed, r"events.jsonl has \d+ complete events, the checkpoint follows \d+; events were lost")


def test_event_cut_mid_line_before_the_checkpoint_is_refused(killed):
    text = (killed / "events.jsonl").read_text()
    (killed / "events.jsonl").write_text(text[: len(text) - 20])
    _refused(killed, "events were lost")


def test_damaged_event_line_is_refused(killed):
    lines = (killed / "events.jsonl").read_text().splitlines(keepends=True)
    lines[1] = lines[1][:10] + "\n"
    (killed / "events.jsonl").write_text("".join(lines))
    _refused(killed, "events.jsonl line 2 is damaged")


def test_deleted_events_are_refused(killed):
    os.remove(killed / "events.jsonl")
    _refused(killed, "events.jsonl is missing")


@pytest.mark.parametrize("damage", ["empty", "half", "garbage", "deleted"])
def test_damaged_checkpoint_is_refused(killed, damage):
    p = killed / "checkpoints" / "last.pt"
    data = p.read_bytes()
    if damage == "deleted":
        os.remove(p)
    else:
        p.write_bytes({"empty": b"", "half": data[: len(data) // 2], "garbage": b"not a checkpoint" * 10}[damage])
    _refused(killed, "checkpoints/last.pt is missing" if damage == "deleted"
             else "checkpoints/last.pt is corrupt or truncated")


def test_damaged_best_checkpoint_is_refused(tmp_path):
    d = tmp_path / "s2"
    with pytest.raises(ms.RunInterrupted):   # schedule [1, 1]: 1 Stage I epoch, then Stage II epoch 1
        run(RunConfig(**{**TINY, "method": "schedule", "schedule_epochs": [1, 1]}, out=str(d)), interrupt_after=2)
    (d / "checkpoints" / "best.pt").write_bytes(b"")
    _refused(d, "checkpoints/best.pt is corrupt or truncated")


def test_edited_config_is_refused(killed):
    cfg = json.loads((killed / "config.json").read_text())
    (killed / "config.json").write_text(json.dumps({**cfg, "seed": 7}))
    _refused(killed, r"config.json differs from the config of checkpoints/last.pt in \['seed'\]")


@pytest.mark.parametrize("damage", ["deleted", "not json"])
def test_missing_or_broken_config_is_refused(killed, damage):
    if damage == "deleted":
        os.remove(killed / "config.json")
    else:
        (killed / "config.json").write_text("{ nope")
    _refused(killed, "config.json is missing" if damage == "deleted" else "config.json is not valid JSON")


def test_cli_refuses_a_damaged_directory_in_one_line(killed, caplog):
    os.remove(killed / "events.jsonl")
    assert main(["run", "--resume", str(killed)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0] and "events.jsonl is missing" in errors[0]


# --------------------------------------------------------------------------- a new run's --out
def test_old_run_files_without_config_are_not_overwritten(tmp_path):
    d = tmp_path / "old"
    (d / "checkpoints").mkdir(parents=True)
    (d / "events.jsonl").write_text('{"type": "epoch"}\n')
    (d / "checkpoints" / "last.pt").write_bytes(b"old")
    with pytest.raises(RunDirError, match=r"holds files of a run \(events.jsonl, checkpoints\).*--overwrite"):
        run(RunConfig(**TINY, out=str(d)))
    assert (d / "events.jsonl").read_text() == '{"type": "epoch"}\n'
    assert (d / "checkpoints" / "last.pt").read_bytes() == b"old"
    res = run(RunConfig(**TINY, out=str(d)), overwrite=True)
    # the first event is the new run's probe of the untrained encoders, not the old line
    assert res.run_dir == str(d) and _events(d)[0]["type"] == "probe" and _events(d)[0]["epoch"] == 0


def test_a_finished_run_is_not_overwritten_without_the_flag(tmp_path, caplog):
    cfg = RunConfig(**{**TINY, "method": "joint", "joint_epochs": 1}, out=str(tmp_path / "done"))
    path = tmp_path / "cfg.json"
    ms.save_config(cfg, str(path))
    assert main(["run", "--config", str(path)]) == 0
    before = (tmp_path / "done" / "result.json").read_text()
    assert main(["run", "--config", str(path)]) == 2
    assert "already holds a run" in caplog.text
    assert (tmp_path / "done" / "result.json").read_text() == before
    assert main(["run", "--config", str(path), "--overwrite"]) == 0


def test_out_naming_a_file_is_refused(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    with pytest.raises(RunDirError, match="is a file, not a folder"):
        run(RunConfig(**TINY, out=str(f)))
    assert f.read_text() == "mine"
    with pytest.raises(RunDirError, match="cannot create"):
        run(RunConfig(**TINY, out=str(f / "sub")))


# --------------------------------------------------------------- every field before training
BAD = {
    "dataset": "mnist", "data_path": "/nonexistent/x", "dataset_options": [], "seed": -1, "method": "best",
    "out": 3, "encoder": "vit", "width": 0, "fusion": "max", "optimizer": "rmsprop", "lr_stage1": 0,
    "lr_stage2": -1.0, "momentum": 1.0, "weight_decay": -1, "lr_step_epochs": 0, "lr_gamma": 2.0,
    "batch_size": 0, "stage2": "bogus", "stage2_options": {"nope": 1}, "method_options": [], "max_unimodal_epochs": -1,
    "stage2_epochs": -1, "joint_epochs": -1, "unimodal_epochs": -1, "schedule_epochs": [1], "tau_u": 0.5,
    "lambda_s": 0, "probe_every": 0, "max_switches": -1, "max_modality_epochs": 0, "eps": 0,
    "when_balanced": "never", "k": 1, "probe_boot": -1, "probe_bias_correction": "shuffle", "probe_confidence": 1.5, "pca_dims": 0, "binning": "x", "pid_method": "bogus", "probe_cache": "yes", "probe_data": "val", "probe_train_samples": 0,
    "amp": 1, "device": "tpu", "num_threads": 0, "progress": "no", "plots": None,
    "start_modality": 3, "decision_rule": "vibes", "confirm_probes": 0, "first_probes": [-1],
    "stop_after_switches": 0, "val_patience": 0, "val_min_delta": -0.1, "val_restore": "yes", "rollback": 1,
    "fallback": "no", "fallback_z": -1, "fallback_rule": "never", "projection_dim": 0, "track_test": "yes",
}


def test_every_config_field_has_a_bad_value_here():
    assert set(BAD) == {f.name for f in dataclasses.fields(RunConfig)}


@pytest.mark.parametrize("name", sorted(BAD))
def test_every_field_is_validated_before_training(tmp_path, name):
    out = tmp_path / "run"
    cfg = RunConfig(**{**TINY, "out": str(out), name: BAD[name]})
    with pytest.raises(ValueError, match=f"config.{name}:"):
        run(cfg)
    assert not out.exists()          # refused before the run directory, so before the first epoch
