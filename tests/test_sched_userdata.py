"""Users' arrays, Datasets and encoders; validation of their data; the controller in a hand-written loop."""
import os
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import multimodal_sched as ms
from multimodal_sched import Controller, RunConfig, probe, run

FAST = dict(max_unimodal_epochs=4, probe_every=2, stage2_epochs=2, k=4, pca_dims=2,
            pid_method="analytic", progress=False, plots=False, batch_size=32, width=4)


def two_views(n, seed, n_classes=3):
    """Two noisy views of one latent class signal."""
    centers = np.random.default_rng(123).standard_normal((n_classes, 6)) * 2   # shared by all splits
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    x1 = centers[y] + rng.standard_normal((n, 6))
    x2 = np.concatenate([centers[y][:, :3] * 0.5, rng.standard_normal((n, 5))], axis=1) + rng.standard_normal((n, 8))
    return x1.astype(np.float32), x2.astype(np.float32), y


def splits(seed=0):
    return {s: two_views(n, seed + i) for i, (s, n) in enumerate((("train", 120), ("val", 60), ("test", 60)))}


def test_run_from_numpy_arrays(tmp_path):
    cfg = RunConfig(out=str(tmp_path / "arr"), **{**FAST, "width": 8, "stage2_epochs": 4, "lr_stage2": 0.05})
    res = run(cfg, data=splits())
    assert res.dataset == "user" and res.test_accuracy > 0.5          # 3 classes: chance is 1/3
    assert os.path.isfile(os.path.join(res.run_dir, "result.json"))
    assert res.probes                                                 # probe defaults to the val split


class PairDataset(Dataset):
    def __init__(self, x1, x2, y):
        self.x1, self.x2, self.y = x1, x2, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x1[i], self.x2[i], int(self.y[i])


def test_run_from_torch_datasets_and_own_encoders(tmp_path):
    data = {s: PairDataset(*v) for s, v in splits(1).items()}
    enc1 = nn.Sequential(nn.Linear(6, 7), nn.ReLU())                   # width 7, inferred by a dry pass
    enc2 = nn.Sequential(nn.Linear(8, 5), nn.Tanh())
    res = run(RunConfig(out=str(tmp_path / "ds"), method="pid", **FAST), data=data, encoders=(enc1, enc2))
    assert res.model.fusion.fc.in_features == 12
    assert res.model.head1.in_features == 7 and res.model.head2.in_features == 5
    assert enc1[0].weight.grad is None                                 # the user's modules are not trained
    # resume works for user data as for built-in data
    part = RunConfig(out=str(tmp_path / "ds2"), method="pid", **FAST)
    with pytest.raises(ms.RunInterrupted):
        run(part, data=data, encoders=(enc1, enc2), interrupt_after=2)
    again = run(None, data=data, encoders=(enc1, enc2), resume=part.out)
    assert again.test_accuracy == res.test_accuracy


@pytest.mark.filterwarnings("ignore:split .* has no sample:UserWarning")
@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(train=(d["train"][0][:-1], d["train"][1], d["train"][2])), "same length"),
    (lambda d: d["val"][0].__setitem__((0, 0), np.nan), "NaN or inf"),
    (lambda d: d["test"][1].__setitem__((3, 1), np.inf), "NaN or inf"),
    (lambda d: d.update(test=(d["test"][0], d["test"][1], d["test"][2] + 5)), r"labels must be in 0\.\.2"),
    (lambda d: d.update(val=(d["val"][0], d["val"][1], d["val"][2] - 1)), r"labels must be in"),
    (lambda d: d.pop("test"), "missing split"),
    (lambda d: d.update(probe=tuple(a[:3] for a in d["val"])), "probe samples"),
])
def test_user_data_validation_errors(tmp_path, mutate, match):
    data = splits()
    mutate(data)
    out = tmp_path / "bad"
    with pytest.raises(ValueError, match=match):
        run(RunConfig(out=str(out), **FAST), data=data)
    assert not out.exists()


def test_dataset_with_nan_and_missing_class_warning():
    x1, x2, y = two_views(30, 0)
    x1[4, 2] = np.nan
    with pytest.raises(ValueError, match="item 4"):
        ms.as_multimodal_data({"train": PairDataset(x1, x2, y), "val": two_views(9, 1), "test": two_views(9, 2)})
    val = two_views(30, 3)
    val = tuple(a[val[2] != 2] for a in val)
    with pytest.warns(UserWarning, match=r"split 'val' has no sample of class\(es\) \[2\]"):
        ms.as_multimodal_data({"train": two_views(60, 0), "val": val, "test": two_views(30, 4)})


def test_encoder_with_non_2d_output_is_rejected(tmp_path):
    bad = nn.Unflatten(1, (2, 3))                                     # (batch, 6) -> (batch, 2, 3)
    with pytest.raises(ValueError, match="encoder1 must map a batch to a 2-D"):
        run(RunConfig(out=str(tmp_path / "e"), **FAST), data=splits(), encoders=(bad, nn.Linear(8, 4)))
    with pytest.raises(TypeError, match="pair"):
        run(RunConfig(out=str(tmp_path / "e2"), **FAST), data=splits(), encoders=(nn.Linear(6, 4),))


def test_probe_standalone_and_k_check():
    x1, x2, y = two_views(80, 0)
    loader = DataLoader(TensorDataset(torch.from_numpy(x1), torch.from_numpy(x2), torch.from_numpy(y)), batch_size=32)
    e1, e2 = nn.Linear(6, 4), nn.Linear(8, 4)
    e1.train()
    r = probe(e1, e2, loader, k=5, pca_dims=2, seed=0, n_boot=0, bias_correction=None, pid_method="analytic")
    assert e1.training                                                # mode restored
    assert r.histogram.shape == (5, 5, 3) and r.histogram.sum() == 80
    p = r.result                                                      # the plug-in solve
    assert r.estimate["I1"] == p.I1 > 0.3                             # no correction: estimate is the plug-in
    assert p.R + p.U2 == pytest.approx(p.I2, abs=1e-6)
    assert p.R + p.U1 + p.U2 + p.S == pytest.approx(p.I, abs=1e-6)
    r2 = probe(e1, e2, loader, k=5, pca_dims=2, seed=0, n_boot=0, bias_correction=None, pid_method="analytic")
    assert r2.estimate == r.estimate                                  # seeded: reproducible
    rq = probe(e1, e2, loader, k=5, binning="quantile", n_boot=20, pid_method="analytic")
    assert rq.histogram.shape[:2] == (5, 5)
    for q, (lo, hi) in rq.intervals.items():
        assert lo <= hi, q
    with pytest.raises(ValueError, match="k=100"):
        probe(e1, e2, loader, k=100, pid_method="analytic")


def test_choose_k_keeps_five_samples_per_cell():
    from multimodal_sched.probing import choose_k
    for n, ny in ((270, 10), (1000, 10), (5000, 10), (400, 2), (10**6, 3), (10, 10)):
        k = choose_k(n, ny)
        assert 2 <= k <= 20
        if k > 2:
            assert k * k * ny <= n / 5                                # at least 5 samples a cell on average
        if k < 20:
            assert (k + 1) ** 2 * ny > n / 5                          # and the largest such k
    assert (choose_k(270, 10), choose_k(1000, 10), choose_k(10**6, 3)) == (2, 4, 20)


def test_hand_written_loop_reaches_stage_two():
    torch.manual_seed(0)
    (x1, x2, y), (v1, v2, vy) = two_views(300, 0), two_views(120, 1)
    train = DataLoader(TensorDataset(*map(torch.from_numpy, (x1, x2, y))), batch_size=32, shuffle=True)
    probe_loader = DataLoader(TensorDataset(*map(torch.from_numpy, (v1, v2, vy))), batch_size=64)
    encoders = [nn.Sequential(nn.Linear(6, 16), nn.ReLU()), nn.Sequential(nn.Linear(8, 16), nn.ReLU())]
    heads = [nn.Linear(16, 3), nn.Linear(16, 3)]
    opts = [torch.optim.SGD(list(e.parameters()) + list(h.parameters()), lr=0.05, momentum=0.9)
            for e, h in zip(encoders, heads)]
    ctl = Controller(tau_u=1.5, lambda_s=0.8, probe_every=2, max_unimodal_epochs=10)
    decision, seen = ctl.decision, []
    for epoch in range(1, ctl.max_unimodal_epochs + 1):
        for m in decision.modalities:
            for batch in train:
                loss = nn.functional.cross_entropy(heads[m - 1](encoders[m - 1](batch[m - 1])), batch[2])
                opts[m - 1].zero_grad()
                loss.backward()
                opts[m - 1].step()
        if ctl.due(epoch):
            decision = ctl.observe(probe(*encoders, probe_loader, k=6, pca_dims=3, pid_method="analytic"), epoch)
            seen.append(decision)
            if decision.start_joint:
                break
    assert decision.start_joint and ctl.finished
    assert seen and all(d.reason for d in seen)
    assert ctl.history[-1]["decision"]["start_joint"]
    assert sum(ctl.modality_epochs) >= ctl.epoch


def _doc_section(path, title):
    text = open(path).read()
    sec = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", sec, flags=re.S)


def test_docs_your_own_data_section_runs(tmp_path, monkeypatch):
    doc = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
    blocks = _doc_section(doc, "Your own data")
    assert blocks, "README.md must have python blocks under '## Your own data'"
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ns = {}
        for code in blocks:
            exec(compile(code, "README.md", "exec"), ns)
    res, (x1, x2, y) = ns["result"], ns["data"]["test"]
    res.model.eval()
    with torch.no_grad():   # the reported accuracy is the returned model's on the test split, above chance
        acc = (res.model(torch.as_tensor(x1), torch.as_tensor(x2))[0].argmax(1).numpy() == y).mean()
    assert res.test_accuracy == pytest.approx(acc, abs=1e-12) and res.test_accuracy > 1 / 3
    assert ns["decision"].start_joint


def test_npz_dataset_through_config(tmp_path):
    arrays = {}
    for s, (x1, x2, y) in splits(2).items():
        arrays.update({f"x1_{s}": x1, f"x2_{s}": x2, f"y_{s}": y})
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    res = run(RunConfig(dataset="npz", data_path=str(path), method="joint", joint_epochs=2,
                        out=str(tmp_path / "npz"), **FAST))
    assert res.dataset == "mine.npz" and res.test_accuracy > 0.5     # 3 classes: chance is 1/3
