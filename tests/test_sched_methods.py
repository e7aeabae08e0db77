"""Every method through ``run``: the strategies trained from scratch, Stage I + strategy, sequential and UDI."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

import multimodal_sched as ms
from multimodal_sched import RunConfig, RunInterrupted, run
from multimodal_sched.config import STRATEGY_METHODS
from multimodal_sched.methods.gblending import gblend_weights
from multimodal_sched.methods.mla import mla_fused_logits
from multimodal_sched.schedules import get_schedule
from multimodal_sched.schedules.udi import similarity_loss

# 4 classes (chance 0.25); MLP encoders of one width (2 * width), so MLA's shared head fits
BASE = dict(dataset="synthetic", dataset_options={"n_train": 600}, width=8, batch_size=64,
            max_unimodal_epochs=4, probe_every=2, stage2_epochs=2, joint_epochs=3, k=5, pca_dims=3,
            pid_method="analytic", progress=False, plots=False)


def cfg(tmp_path, name="run", **kw):
    return RunConfig(**{**BASE, "out": str(tmp_path / name), **kw})


def events(d, phase=None):
    with open(os.path.join(d, "events.jsonl")) as f:
        ev = [json.loads(line) for line in f]
    return [e for e in ev if e["type"] == "epoch" and e["phase"] == phase] if phase else ev


def fused_accuracy(model, ds) -> float:
    x1, x2, y = ds.tensors
    model.eval()
    with torch.no_grad():
        return (model(x1, x2)[0].argmax(1) == y).double().mean().item()


TEST = ms.make_synthetic(seed=0, n_train=600).splits["test"]
VAL = ms.make_synthetic(seed=0, n_train=600).splits["val"]


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- strategies trained from scratch
CG = dict(dataset="cg-digits", dataset_options={"n_train": 200}, width=4, batch_size=64, max_unimodal_epochs=3,
          probe_every=2, stage2_epochs=1, joint_epochs=2, k=5, pca_dims=3, pid_method="analytic", progress=False,
          plots=False)


@pytest.mark.parametrize("method", ["concat", "uniform", "aux0.6", "ogm-ge", "pmr", "mmpareto", "gblending", "mla", "agm",
                                    "sequential", "udi"])
def test_every_method_finishes_on_cg_digits(tmp_path, method):
    """CNN4 encoders (BatchNorm, 1- and 3-channel inputs): the run finishes and reports its model's accuracy."""
    res = run(RunConfig(**CG, method=method, out=str(tmp_path / "run")))
    assert os.path.isfile(os.path.join(res.run_dir, "result.json"))
    test = ms.make_cg_digits(seed=0, n_train=200).splits["test"]
    assert res.test_accuracy == pytest.approx(fused_accuracy(res.model, test), abs=1e-12)


EXPECTED = {"concat": ("concat", {}), "uniform": ("uniform", {}), "aux0.6": ("aux", {"weight": 0.6}),
            "ogm-ge": ("ogm-ge", {}), "pmr": ("pmr", {}), "mmpareto": ("mmpareto", {}),
            "gblending": ("gblending", {}), "mla": ("mla", {}), "agm": ("agm", {})}


def test_every_strategy_is_a_method():
    assert set(STRATEGY_METHODS) == set(EXPECTED)
    assert {n for n, _ in EXPECTED.values()} <= set(ms.methods.strategy_names())


@pytest.mark.parametrize("method", sorted(STRATEGY_METHODS))
def test_strategy_method_runs_learns_and_equals_joint_with_that_strategy(tmp_path, method):
    # MLA trains each modality on half the batches: give it a few more epochs to clear chance
    extra = {"joint_epochs": 6} if method == "mla" else {}
    res = run(cfg(tmp_path, method=method, **extra))
    d = res.run_dir
    for f in ("config.json", "events.jsonl", "result.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert os.path.isfile(os.path.join(d, f)), f
    assert json.load(open(os.path.join(d, "result.json")))["method"] == method
    assert res.stage1_epochs == [0, 0] and len(events(d, "stage2")) == (6 if extra else 3)
    assert res.test_accuracy > 0.3                                    # chance is 0.25
    assert res.test_accuracy == pytest.approx(fused_accuracy(res.model, TEST), abs=1e-12)
    # the method is exactly "joint from scratch with that strategy" (aux0.6 = the default aux)
    strategy, preset = EXPECTED[method]
    twin = run(cfg(tmp_path, "twin", method="joint", stage2=strategy, stage2_options=preset, **extra))
    assert same_weights(res.model, twin.model)


def test_strategies_differ_from_each_other(tmp_path):
    models = {m: run(cfg(tmp_path, m, method=m, joint_epochs=2)).model
              for m in ("concat", "uniform", "ogm-ge", "pmr", "mmpareto", "agm")}
    names = list(models)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not same_weights(models[a], models[b]), (a, b)


def test_mla_model_shares_one_head_and_fuses_by_entropy(tmp_path):
    res = run(cfg(tmp_path, method="mla", joint_epochs=1))
    m = res.model
    assert m.head1 is m.head2
    x1, x2, _ = TEST.tensors
    m.eval()
    with torch.no_grad():
        z1, z2 = m.encoder1(x1), m.encoder2(x2)
        l1, l2 = m.head1(z1), m.head1(z2)
        e = torch.stack([-(F.softmax(l, 1) * F.log_softmax(l, 1)).sum(1) for l in (l1, l2)], 1)
        w = torch.exp(e.max(1, keepdim=True).values - e)
        w = w / w.sum(1, keepdim=True)
        assert torch.allclose(m(x1, x2)[0], w[:, :1] * l1 + w[:, 1:] * l2, atol=1e-6)
        assert torch.equal(m(x1, x2)[0], mla_fused_logits(l1, l2))


# ---------------------------------------------------------------- Stage I + Stage II strategy
@pytest.mark.parametrize("method, stage2", [("pid", "pmr"), ("schedule", "gblending"), ("mi", "mla"), ("pid", "agm")])
def test_stage1_then_strategy(tmp_path, method, stage2):
    res = run(cfg(tmp_path, method=method, stage2=stage2, schedule_epochs=[1, 2], tau_u=1.01))
    assert sum(res.stage1_epochs) > 0 and len(events(res.run_dir, "stage2")) == 2
    assert res.test_accuracy > 0.3
    assert res.test_accuracy == pytest.approx(fused_accuracy(res.model, TEST), abs=1e-12)
    # (not the default uniform: gblending's first super-epoch weighs the three losses equally too)
    base = run(cfg(tmp_path, "aux", method=method, schedule_epochs=[1, 2], tau_u=1.01, stage2="aux0.6"))
    if stage2 != "mla":                                  # (mla shares one head from Stage I on)
        assert base.stage1_epochs == res.stage1_epochs   # same Stage I, other Stage II
    assert not same_weights(base.model, res.model)


def test_stage2_default_is_uniform_and_alias_aux06_is_aux_weight_06(tmp_path):
    a = run(cfg(tmp_path, "a", method="schedule", schedule_epochs=[1, 1], stage2="uniform"))
    b = run(cfg(tmp_path, "b", method="schedule", schedule_epochs=[1, 1]))
    assert same_weights(a.model, b.model)
    c = run(cfg(tmp_path, "c", method="schedule", schedule_epochs=[1, 1], stage2="aux0.6"))
    d = run(cfg(tmp_path, "d", method="schedule", schedule_epochs=[1, 1], stage2="aux", stage2_options={"weight": 0.6}))
    assert same_weights(c.model, d.model) and not same_weights(b.model, c.model)


def test_gblending_gets_every_classifiers_losses_and_weights_follow_them(tmp_path):
    res = run(cfg(tmp_path, method="gblending", stage2_options={"super_epoch": 1}))
    ev = events(res.run_dir, "stage2")
    # the val losses the runner reports are the (last) model's cross-entropies, recomputed here
    last = torch.load(os.path.join(res.run_dir, "checkpoints", "last.pt"), weights_only=False)
    m = res.model
    m.load_state_dict(last["model"])
    m.eval()
    x1, x2, y = VAL.tensors
    with torch.no_grad():
        fused, l1, l2 = m(x1, x2)
    for key, logits in (("val_loss_fused", fused), ("val_loss_1", l1), ("val_loss_2", l2)):
        assert ev[-1][key] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5), key
    assert ev[-1]["val_loss_fused"] == ev[-1]["val_loss"]
    # super_epoch=1: the weights after epoch t come from the metrics of epochs t-1 and t
    hist = last["strategy"]["history"]
    assert [e for e, _ in hist] == [2, 3]
    for (epoch, w), before, after in zip(hist, ev[:-1], ev[1:]):
        expect = gblend_weights(before, after, min_overfit=1e-3)
        assert expect is not None and w == pytest.approx(expect)
    assert last["strategy"]["weights"] != [1.0, 1.0, 1.0]


# ---------------------------------------------------------------- resume with strategy / schedule state
@pytest.mark.parametrize("method, kw, cut", [
    ("ogm-ge", {}, 2),                                              # noise generator state
    ("pmr", {}, 2),                                                 # prototypes
    ("udi", {"method_options": {"patience": 1}}, 3),                # plan, best weights, guidance weight
])
def test_resume_is_bit_identical(tmp_path, method, kw, cut):
    full = run(cfg(tmp_path, "full", method=method, **kw))
    part = cfg(tmp_path, "part", method=method, **kw)
    with pytest.raises(RunInterrupted):
        run(part, interrupt_after=cut)
    resumed = run(None, resume=part.out)
    assert same_weights(full.model, resumed.model)
    strip = lambda evs: [{k: v for k, v in e.items() if k not in ("run_dir", "wall_time_s")} for e in evs]  # noqa
    assert strip(events(part.out)) == strip(events(full.run_dir))


# ---------------------------------------------------------------- sequential and UDI plans
def test_sequential_plan_on_a_scripted_validation_curve():
    s = get_schedule("sequential", order=[2, 1], patience=2, min_delta=0.01)
    s.setup(max_epochs=4)
    plan = []
    for acc in [0.5, 0.6, 0.605, 0.59]:          # modality 2: best at its 2nd epoch (0.605 < 0.6 + 0.01)
        plan.append(s.plan())
        s.observe(s.plan()[0], acc)
    assert plan == [(2,)] * 4
    # epochs 3 and 4 gain less than 0.01 over 0.6: two misses = patience, modality 2 is done
    assert s.finished == [{"modality": 2, "epochs": 4, "best_epoch": 2, "best_val_acc": 0.6, "reason": "plateau"}]
    assert s.pop_restores() == [2] and s.pop_restores() == []
    for acc in [0.3, 0.4, 0.5, 0.6]:             # modality 1 keeps improving: stopped by the 4-epoch cap
        assert s.plan() == (1,)
        assert s.observe(1, acc) is True
    assert s.finished[1] == {"modality": 1, "epochs": 4, "best_epoch": 4, "best_val_acc": 0.6,
                             "reason": "max_unimodal_epochs"}
    assert s.plan() is None and s.pop_restores() == [1]
    with pytest.raises(ValueError, match="plan"):
        s.observe(1, 0.1)


def test_udi_plan_and_interaction_weight_on_a_scripted_curve():
    s = get_schedule("udi", anchor=2, patience=1, weight=2.0)
    s.setup(max_epochs=10)
    assert s.plan() == (2,) and s.guidance(2) is None and s.guidance(1) is None
    s.observe(2, 0.7)
    s.observe(2, 0.8)
    s.observe(2, 0.75)                           # one epoch without gain: the anchor is done, best 0.8
    assert s.plan() == (1,) and s.pop_restores() == [2]
    assert s.guidance(2) is None
    assert s.guidance(1) == (2, pytest.approx(2.0))                    # nothing learned yet: full weight
    s.observe(1, 0.6)
    assert s.guidance(1) == (2, pytest.approx(2.0 * (0.8 - 0.6) / 0.8))
    s.observe(1, 0.9)                            # caught up with the anchor: no guidance
    assert s.guidance(1) == (2, 0.0)
    s.observe(1, 0.85)
    assert s.plan() is None


def test_similarity_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0]])          # K = identity
    za = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # K = all ones (another width)
    assert similarity_loss(z, za).item() == pytest.approx(0.5)   # two off-diagonal 1s of 4 entries
    assert similarity_loss(za, za).item() == pytest.approx(0.0)


def _replay(accs, patience, cap):
    """Independent plateau rule: epochs until ``patience`` epochs in a row without a new best, or ``cap``."""
    best, since = None, 0
    for i, a in enumerate(accs, 1):
        if best is None or a > best:
            best, since = a, 0
        else:
            since += 1
        if since >= patience or i >= cap:
            return i
    return None


@pytest.mark.parametrize("method", ["sequential", "udi"])
def test_sequential_and_udi_runs_follow_their_plan(tmp_path, method):
    opts = {"patience": 1} if method == "sequential" else {"patience": 1, "anchor": 2, "weight": 0.5}
    res = run(cfg(tmp_path, method=method, method_options=opts, max_unimodal_epochs=5))
    s1 = events(res.run_dir, "stage1")
    order = [1, 2] if method == "sequential" else [2, 1]
    trained = [[m for m in (1, 2) if f"m{m}" in e] for e in s1]
    assert all(len(t) == 1 for t in trained)                      # one modality per epoch
    first = [t[0] for t in trained]
    n_a = first.count(order[0])
    assert first == [order[0]] * n_a + [order[1]] * (len(first) - n_a)
    for m in order:
        accs = [e[f"m{m}"]["val_acc"] for e in s1 if f"m{m}" in e]
        assert len(accs) == _replay(accs, 1, 5)
    assert res.stage1_epochs == [first.count(1), first.count(2)]
    assert len(events(res.run_dir, "stage2")) == 2 and res.test_accuracy > 0.3
    if method == "udi":
        a, o = order
        best_a = max(e[f"m{a}"]["val_acc"] for e in s1 if f"m{a}" in e)
        guided = [e[f"m{o}"] for e in s1 if f"m{o}" in e]
        prev = [0.0] + [g["val_acc"] for g in guided[:-1]]
        for g, p in zip(guided, prev):
            assert g["guide_weight"] == pytest.approx(0.5 * max(0.0, best_a - p) / best_a)
        assert all("guide_weight" not in e[f"m{a}"] for e in s1 if f"m{a}" in e)


class _Snapshot(ms.methods.Strategy):
    """Stage II strategy that keeps copies of the encoders it is handed when Stage II starts."""

    name = "_test_snapshot"
    seen = {}

    def setup(self, model, *, n_classes, epochs):
        for m in (1, 2):
            _Snapshot.seen[m] = {k: v.clone() for k, v in getattr(model, f"encoder{m}").state_dict().items()}


def test_sequential_reloads_the_best_weights_of_a_finished_modality(tmp_path):
    ms.methods.register(_Snapshot)
    try:
        res = run(cfg(tmp_path, method="sequential", stage2="_test_snapshot",
                      method_options={"patience": 2}, max_unimodal_epochs=15, lr_stage1=0.2))
    finally:
        ms.methods.STRATEGIES.pop("_test_snapshot", None)
    s1 = events(res.run_dir, "stage1")
    best = torch.load(os.path.join(res.run_dir, "checkpoints", "best.pt"), weights_only=False)
    for m in (1, 2):
        accs = [e[f"m{m}"]["val_acc"] for e in s1 if f"m{m}" in e]
        assert accs.index(max(accs)) < len(accs) - 1       # the best was not the last epoch ...
        enc = best[f"m{m}"]["encoder"]
        assert set(enc) == set(_Snapshot.seen[m])
        assert all(torch.equal(enc[k], _Snapshot.seen[m][k]) for k in enc)   # ... yet Stage II got it


# ---------------------------------------------------------------- refused before training
@pytest.mark.parametrize("change, match", [
    (dict(method="ogm"), "unknown method"),
    (dict(method="ogm-ge", stage2_options={"alpha": -1.0}), "alpha"),
    (dict(method="pmr", stage2_options={"betta": 1.0}), "stage2_options.*no option"),
    (dict(method="ogm-ge", stage2="pmr"), "its own strategy"),
    (dict(method="aux0.6", stage2_options={"weight": 0.3}), "fixes"),
    (dict(method="pid", stage2="aux0.6", stage2_options={"weight": 0.3}), "fixes"),
    (dict(method="pid", stage2="ogm"), "config.stage2:"),
    (dict(method="mla", fusion="sum"), "config.fusion"),
    (dict(method="unimodal", stage2="pmr"), "no Stage II"),
    (dict(method="sequential", method_options={"patience": 0}), "patience"),
    (dict(method="sequential", method_options={"order": [1, 1]}), "order"),
    (dict(method="udi", method_options={"anchor": 3}), "anchor"),
    (dict(method="udi", method_options={"weight": -1}), "weight"),
    (dict(method="udi", method_options={"patiense": 2}), "no option"),
    (dict(method="pid", method_options={"patience": 2}), "takes no method_options"),
    (dict(method="sequential", max_unimodal_epochs=0), "max_unimodal_epochs"),
])
def test_bad_method_or_options_refused_before_training(tmp_path, change, match):
    c = cfg(tmp_path, "bad", **change)
    with pytest.raises(ValueError, match=match):
        run(c)
    assert not os.path.exists(c.out)


def test_mla_needs_one_embedding_width(tmp_path):
    encs = (torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(8)),
            torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(6)))
    c = cfg(tmp_path, "mla", method="mla")
    with pytest.raises(ValueError, match="one width.*8.*6"):
        run(c, encoders=encs)
    assert not os.path.exists(c.out)


def test_cli_method_stage2_and_options(tmp_path, capsys):
    from multimodal_sched.cli import main

    c = cfg(tmp_path, "cli")
    path = tmp_path / "c.json"
    ms.save_config(c, str(path))
    assert main(["run", "--config", str(path), "--method", "schedule", "--stage2", "pmr",
                 "--stage2-options", '{"beta": 2.0}']) == 0
    out = json.loads(capsys.readouterr().out)
    saved = json.load(open(tmp_path / "cli" / "config.json"))
    assert out["method"] == "schedule" and saved["stage2"] == "pmr" and saved["stage2_options"] == {"beta": 2.0}
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "c2"), "--method", "sequential",
                 "--method-options", '{"patience": 1}']) == 0
    assert json.load(open(tmp_path / "c2" / "config.json"))["method_options"] == {"patience": 1}
    with pytest.raises(SystemExit):
        main(["run", "--config", str(path), "--stage2-options", "{alpha: 1}"])
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "c3"), "--method", "ogm-ge",
                 "--stage2-options", '{"alpha": "big"}']) == 2
    assert not os.path.exists(tmp_path / "c3")


# ---------------------------------------------------------------- two gloo ranks (torchrun-style env)
DDP_RUNS = {**{m: dict(method=m, joint_epochs=2) for m in ("concat", "ogm-ge", "pmr", "mmpareto", "mla", "agm")},
            "gblending": dict(method="gblending", joint_epochs=3, stage2_options={"super_epoch": 1}),
            "sequential": dict(method="sequential", method_options={"patience": 1}, max_unimodal_epochs=3,
                               stage2_epochs=1),
            "udi": dict(method="udi", method_options={"patience": 1}, max_unimodal_epochs=3, stage2_epochs=1)}


def _ddp_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    rec = {}
    for name, kw in DDP_RUNS.items():
        res = run(RunConfig(**{**BASE, **kw, "out": os.path.join(out, name)}))
        sd = res.model.state_dict() if res.model is not None else None
        rec[name] = {"test": res.test_accuracy, "stage1": res.stage1_epochs,
                     "weights": None if sd is None else {k: v.flatten().tolist() for k, v in sd.items()}}
        if rank == 1:
            assert res.model is None
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(rec, f)


@pytest.mark.slow
def test_two_ranks_agree_and_match_one_process(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    r0, r1 = (json.load(open(tmp_path / f"rank{r}.json")) for r in (0, 1))
    for name, kw in DDP_RUNS.items():
        assert r0[name]["test"] == r1[name]["test"] and r0[name]["stage1"] == r1[name]["stage1"], name
        assert (tmp_path / name / "result.json").is_file()
        single = run(RunConfig(**{**BASE, **kw, "out": str(tmp_path / f"single-{name}")}))
        if name == "udi":   # the guidance's similarity matrix is per shard: only the plan is compared
            assert r0[name]["stage1"] == single.stage1_epochs
            continue
        # MLP encoders (no BatchNorm): the 2-rank gradients are the global batch's, up to summation order
        for k, v in single.model.state_dict().items():
            assert torch.allclose(torch.tensor(r0[name]["weights"][k]).view_as(v), v, atol=1e-4), (name, k)
