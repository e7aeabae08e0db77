"""loader -> paper's model -> one Stage I epoch -> probe -> one Stage II epoch, on every fake layout."""
import json
import os

import pytest
import torch

from fake_layouts import make_ave, make_cgmnist, make_cremad, make_ucf101
from multimodal_sched import RunConfig, run
from multimodal_sched.cli import main as cli_main
from multimodal_sched.data import DATASETS, DatasetLayoutError
from multimodal_sched.models import CNN4, ResNet18, StackedFramesResNet18

pytestmark = pytest.mark.filterwarnings("ignore:.*has no sample of:UserWarning")

# one Stage I epoch with a probe after it, then one Stage II epoch; width 4 keeps ResNet-18 tiny
TINY = dict(width=4, batch_size=8, max_unimodal_epochs=1, probe_every=1, stage2_epochs=1, k=2, pca_dims=2,
            pid_method="exact", probe_boot=20, progress=False, plots=False)

CASES = {
    "cremad": (make_cremad, {"image_size": 12, "clip_seconds": 0.2}, (ResNet18, StackedFramesResNet18)),
    "ave": (make_ave, {"image_size": 12}, (ResNet18, StackedFramesResNet18)),
    "ucf101": (make_ucf101, {"image_size": 8}, (StackedFramesResNet18, StackedFramesResNet18)),
    "cgmnist": (make_cgmnist, {"n_val": 30, "n_probe": 30}, (CNN4, CNN4)),
}


def _accuracy(model, ds) -> float:
    model.eval()
    hits = 0
    with torch.no_grad():
        for x1, x2, y in torch.utils.data.DataLoader(ds, batch_size=16):
            hits += (model(x1, x2)[0].argmax(1) == y).sum().item()
    return hits / len(ds)


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_stage_run_on_fake_layout(tmp_path, name):
    make, opts, types = CASES[name]
    root = make(str(tmp_path / "data"))
    res = run(RunConfig(dataset=name, data_path=root, dataset_options=opts, out=str(tmp_path / "run"), **TINY))
    # tiny random layouts learn nothing in one epoch: check the reported figure against the
    # returned model's accuracy on the test split, computed here
    test = DATASETS[name].build(root, seed=0, **opts).splits["test"]
    assert res.dataset == name and res.test_accuracy == pytest.approx(_accuracy(res.model, test), abs=1e-12)
    assert [p["epoch"] for p in res.probes] == [0, 1]              # the untrained encoders, then epoch 1
    assert {"R", "U1", "U2", "S", "interval", "plugin"} <= set(res.probes[1])
    assert res.stage1_epochs == [1, 1]
    assert isinstance(res.model.encoder1, types[0]) and isinstance(res.model.encoder2, types[1])
    events = [json.loads(x) for x in open(os.path.join(res.run_dir, "events.jsonl"))]
    assert [e.get("phase") for e in events if e["type"] == "epoch"] == ["stage1", "stage2"]


def test_step_lr_and_probe_cache(tmp_path):
    """StepLR divides the lr every lr_step_epochs; the probe cache reuses a paused encoder's embeddings."""
    root = make_cgmnist(str(tmp_path / "data"))
    base = dict(TINY, dataset="cgmnist", data_path=root, dataset_options={"n_val": 30, "n_probe": 30},
                max_unimodal_epochs=2, lr_step_epochs=1, lr_gamma=0.1)
    a = run(RunConfig(**base, out=str(tmp_path / "a")))
    b = run(RunConfig(**base, probe_cache=True, out=str(tmp_path / "b")))
    assert [p["decision"] for p in a.probes] == [p["decision"] for p in b.probes]
    assert a.test_accuracy == b.test_accuracy
    assert sorted(os.listdir(tmp_path / "b" / "probe_cache")) == ["epoch_0000.npz", "epoch_0001.npz", "epoch_0002.npz"]
    ckpt = __import__("torch").load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["opts"]["m1"]["param_groups"][0]["lr"] == pytest.approx(base.get("lr_stage1", 0.05) * 0.1)


def test_config_errors_before_training(tmp_path):
    with pytest.raises(ValueError, match="data_path.*needs data_path"):
        RunConfig(dataset="cremad").validate()
    with pytest.raises(DatasetLayoutError, match="AudioWAV"):
        os.makedirs(tmp_path / "empty" / "Image-01-FPS")
        run(RunConfig(dataset="cremad", data_path=str(tmp_path / "empty"), out=str(tmp_path / "r"), **TINY))
    assert not (tmp_path / "r").exists()


def test_cli_run_and_prepare(tmp_path, capsys):
    raw = make_cgmnist(str(tmp_path / "raw"), gz=True)
    assert cli_main(["prepare", "cgmnist", "--raw", raw, "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TINY, "dataset": "cgmnist", "dataset_options": {"n_val": 30, "n_probe": 30}}))
    rc = cli_main(["run", "--config", str(cfg), "--data-path", str(tmp_path / "m"), "--out", str(tmp_path / "run"),
                   "--no-progress"])
    assert rc == 0
    assert json.loads((tmp_path / "run" / "result.json").read_text())["dataset"] == "cgmnist"
    assert cli_main(["run", "--dataset", "ave", "--data-path", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2


@pytest.mark.parametrize("name", sorted(CASES))
def test_table2_configs_load_and_validate(tmp_path, name):
    from multimodal_sched.config import load_config

    path = os.path.join(os.path.dirname(__file__), "..", "docs", "configs", f"{name}.yaml")
    cfg = load_config(path).replace(data_path=str(tmp_path), device="cpu")
    cfg.validate()
    assert cfg.dataset == name and cfg.lr_stage1 == DATASETS[name].paper["lr"]
    assert (cfg.batch_size, cfg.momentum, cfg.weight_decay, cfg.lr_step_epochs, cfg.lr_gamma) == (64, 0.9, 1e-4, 30, 0.1)
    assert (cfg.max_unimodal_epochs, cfg.stage2_epochs) == (150, 100)


def test_amp_bfloat16_run_completes(tmp_path):
    """``amp``: bfloat16 autocast in the training forward passes (checked on CPU; meant for CUDA)."""
    root = make_cgmnist(str(tmp_path / "data"))
    res = run(RunConfig(**TINY, dataset="cgmnist", data_path=root, dataset_options={"n_val": 30, "n_probe": 30},
                        amp=True, out=str(tmp_path / "run")))
    test = DATASETS["cgmnist"].build(root, seed=0, n_val=30, n_probe=30).splits["test"]
    assert res.probes and res.test_accuracy == pytest.approx(_accuracy(res.model, test), abs=1e-12)
