"""Stage II strategies: the three simple losses against hand-computed values, the hook order, resumable state."""
import math

import pytest
import torch

from multimodal_sched import RunConfig, RunInterrupted, run
from multimodal_sched.methods import STRATEGIES, JointOutput, Strategy, get_strategy, register
from multimodal_sched.models import ConcatFusion, JointModel

TINY = dict(dataset="cg-digits", dataset_options={"n_train": 128}, width=4, batch_size=64, method="schedule",
            schedule_epochs=[1, 1], stage2_epochs=3, pid_method="analytic", progress=False, plots=False)


def _ce(logits, y):
    """Mean cross-entropy written out: -log softmax(logits)[y]."""
    total = 0.0
    for row, c in zip(logits.tolist(), y.tolist()):
        m = max(row)
        total += -(row[c] - m - math.log(sum(math.exp(v - m) for v in row)))
    return total / len(y)


def _out():
    g = torch.Generator().manual_seed(1)
    t = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return JointOutput(t(5, 3), t(5, 3), t(5, 3), t(5, 4), t(5, 4)), torch.tensor([0, 2, 1, 1, 0])


@pytest.mark.parametrize("name, weights", [("concat", (1, 0, 0)), ("uniform", (1, 1, 1)), ("aux", (1, 0.6, 0.6))])
def test_loss_matches_hand_computed_cross_entropies(name, weights):
    out, y = _out()
    want = sum(w * _ce(z, y) for w, z in zip(weights, out[:3]))
    assert get_strategy(name).loss(out, y, None).item() == pytest.approx(want, rel=1e-12)


def test_aux_weight_option_and_bad_options():
    out, y = _out()
    want = _ce(out.fused, y) + 0.25 * (_ce(out.logits1, y) + _ce(out.logits2, y))
    assert get_strategy("aux", weight=0.25).loss(out, y, None).item() == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="no option"):
        get_strategy("aux", wieght=1.0)
    with pytest.raises(ValueError, match="weight"):
        get_strategy("aux", weight="x")
    with pytest.raises(ValueError, match="unknown Stage II strategy"):
        get_strategy("bogus")


def test_joint_model_outputs_match_forward():
    e1, e2 = torch.nn.Linear(6, 4), torch.nn.Linear(5, 3)
    m = JointModel(e1, e2, torch.nn.Linear(4, 2), torch.nn.Linear(3, 2), ConcatFusion(4, 3, 2))
    x1, x2 = torch.randn(7, 6), torch.randn(7, 5)
    out = m.outputs(x1, x2)
    assert torch.equal(out.z1, e1(x1)) and torch.equal(out.z2, e2(x2))
    assert torch.equal(out.fused, m.fusion.fc(torch.cat([e1(x1), e2(x2)], 1)))
    for a, b in zip(m(x1, x2), out[:3]):
        assert torch.equal(a, b)


def test_config_names_the_strategy_before_training(tmp_path):
    with pytest.raises(ValueError, match="config.stage2:"):
        run(RunConfig(**TINY, stage2="bogus", out=str(tmp_path / "a")))
    with pytest.raises(ValueError, match="config.stage2_options:.*no option"):
        run(RunConfig(**TINY, stage2_options={"wieght": 1.0}, out=str(tmp_path / "b")))
    with pytest.raises(ValueError, match="stage2_options"):
        RunConfig.from_dict({**TINY, "aux_weight": 0.6})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_default_is_uniform_and_concat_differs(tmp_path):
    base = run(RunConfig(**TINY, out=str(tmp_path / "default")))
    same = run(RunConfig(**TINY, stage2="uniform", out=str(tmp_path / "uniform")))
    other = run(RunConfig(**TINY, stage2="concat", out=str(tmp_path / "concat")))
    sd = lambda r: r.model.state_dict()  # noqa: E731
    assert all(torch.equal(sd(base)[k], sd(same)[k]) for k in sd(base))
    assert not all(torch.equal(sd(base)[k], sd(other)[k]) for k in sd(base))


class _Recorder(Strategy):
    """Counts its calls; keeps a running state that must survive a resume."""

    name = "_test_recorder"
    log = []

    def setup(self, model, *, n_classes, epochs):
        self.seen = 0
        _Recorder.log.append(("setup", n_classes, epochs))

    def on_epoch_start(self, epoch, model):
        _Recorder.log.append(("start", epoch))

    def after_backward(self, model, out, y):
        assert model.encoder1.net[1].weight.grad is not None   # called after backward, before the step
        self.seen += len(y)

    def on_epoch_end(self, epoch, metrics):
        _Recorder.log.append(("end", epoch, self.seen, sorted(metrics)))

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def test_hooks_are_called_in_order_and_state_survives_resume(tmp_path):
    cfg = dict(TINY, stage2="_test_recorder", dataset="synthetic", dataset_options={"n_train": 128})
    register(_Recorder)
    try:
        _Recorder.log = []
        run(RunConfig(**cfg, out=str(tmp_path / "full")))
        full = list(_Recorder.log)
        assert full[0] == ("setup", 4, 3)
        assert [e[:2] for e in full[1:]] == [("start", 1), ("end", 1), ("start", 2), ("end", 2), ("start", 3),
                                            ("end", 3)]
        assert [e[2] for e in full if e[0] == "end"] == [128, 256, 384]   # samples seen, cumulative
        assert "val_acc" in full[2][3] and "train_loss" in full[2][3]
        _Recorder.log = []
        with pytest.raises(RunInterrupted):   # after Stage I (1 epoch) and Stage II epochs 1, 2
            run(RunConfig(**cfg, out=str(tmp_path / "part")), interrupt_after=3)
        _Recorder.log = []
        run(None, resume=str(tmp_path / "part"))
        # the resumed Stage II set the strategy up again, loaded its state and continued at epoch 3
        assert _Recorder.log[0][0] == "setup" and _Recorder.log[-1] == full[-1]
    finally:
        STRATEGIES.pop("_test_recorder", None)
