"""Stage II strategies on a scripted two-modality batch: each coefficient or weight against
the value its paper's equation gives, worked out here independently of the strategy code."""
from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from multimodal_sched.methods.base import JointOutput, get_strategy
from multimodal_sched.methods import agm as agm_mod  # noqa: F401
from multimodal_sched.methods import mmpareto as mmpareto_mod  # noqa: F401  (registers)
from multimodal_sched.methods import ogm_ge as ogm_mod  # noqa: F401
from multimodal_sched.methods import gblending as gblending_mod  # noqa: F401
from multimodal_sched.methods import mla as mla_mod  # noqa: F401
from multimodal_sched.methods import pmr as pmr_mod  # noqa: F401
from multimodal_sched.methods.agm import agm_coefficients
from multimodal_sched.methods.mla import mla_fused_logits
from multimodal_sched.methods.mmpareto import pareto_weights
from multimodal_sched.methods.ogm_ge import ogm_coefficients
from multimodal_sched.methods.pmr import pmr_coefficients

C = 3  # classes


class _Concat(nn.Module):
    def __init__(self, d1, d2):
        super().__init__()
        self.fc = nn.Linear(d1 + d2, C)

    def forward(self, z1, z2):
        return self.fc(torch.cat([z1, z2], 1))


class _Sum(nn.Module):
    def __init__(self, d1, d2):
        super().__init__()
        self.fc1 = nn.Linear(d1, C)
        self.fc2 = nn.Linear(d2, C, bias=False)

    def forward(self, z1, z2):
        return self.fc1(z1) + self.fc2(z2)


class Tiny(nn.Module):
    """Two linear+tanh encoders (widths 4 and 3), unimodal heads, a linear fusion."""

    def __init__(self, fusion="concat", seed=0, shared_head=False, d2=3):
        super().__init__()
        torch.manual_seed(seed)
        self.encoder1 = nn.Sequential(nn.Linear(5, 4), nn.Tanh())
        self.encoder2 = nn.Sequential(nn.Linear(2, d2), nn.Tanh())
        self.head1, self.head2 = nn.Linear(4, C), nn.Linear(d2, C)
        self.fusion = (_Concat if fusion == "concat" else _Sum)(4, d2)
        if shared_head:  # MLA: one head for both modalities
            self.head2 = self.head1

    def outputs(self, x1, x2):
        z1, z2 = self.encoder1(x1), self.encoder2(x2)
        return JointOutput(self.fusion(z1, z2), self.head1(z1), self.head2(z2), z1, z2)

    forward = outputs  # DDP all-reduces only through its own forward


def batch(seed=1, n=8):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    # modality 1 carries the label strongly, modality 2 is mostly noise
    x1 = torch.randn(n, 5, generator=g) * 0.3
    x1[torch.arange(n), y] += 2.0
    x2 = torch.randn(n, 2, generator=g)
    return x1, x2, y


def step(strategy, model, x1, x2, y, epoch=1):
    """One pass of the runner's Stage II loop body (no optimizer step); returns grads before and
    after ``after_backward``."""
    strategy.on_epoch_start(epoch, model)
    model.zero_grad()
    out = model.outputs(x1, x2)
    strategy.loss(out, y, model).backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    strategy.after_backward(model, out, y)
    after = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return before, after, out


# ---- OGM-GE -----------------------------------------------------------------------------------

def _hand_shares(model, z1, z2, fusion):
    """Each modality's share of the fused classifier, written out from the weights."""
    if fusion == "concat":
        W, b = model.fusion.fc.weight, model.fusion.fc.bias
        d1 = z1.shape[1]
        return z1 @ W[:, :d1].T + b / 2, z2 @ W[:, d1:].T + b / 2
    b = model.fusion.fc1.bias
    return z1 @ model.fusion.fc1.weight.T + b / 2, z2 @ model.fusion.fc2.weight.T + b / 2


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_ogm_scales_only_dominant_encoder_by_eq10(fusion):
    model = Tiny(fusion)
    with torch.no_grad():  # make modality 1 dominant: its encoder and fusion weights read the label
        model.encoder1[0].weight.copy_(torch.eye(4, 5))
        model.encoder1[0].bias.zero_()
        if fusion == "concat":
            model.fusion.fc.weight[:, :4] += 3 * torch.eye(C, 4)
        else:
            model.fusion.fc1.weight += 3 * torch.eye(C, 4)
    x1, x2, y = batch()
    alpha = 0.4
    s = get_strategy("ogm-ge", alpha=alpha, ge=False)
    before, after, out = step(s, model, x1, x2, y)
    with torch.no_grad():
        sh1, sh2 = _hand_shares(model, out.z1, out.z2, fusion)
        # the two shares add up to the fused logits
        assert torch.allclose(sh1 + sh2, out.fused, atol=1e-6)
        p1 = torch.softmax(sh1, 1)[torch.arange(len(y)), y].sum().item()
        p2 = torch.softmax(sh2, 1)[torch.arange(len(y)), y].sum().item()
    rho = p1 / p2
    assert rho > 1.2, "scripted batch must make modality 1 dominant"
    k = 1 - math.tanh(alpha * rho)
    assert s.last["rho1"] == pytest.approx(rho, rel=1e-6)
    assert s.last["k1"] == pytest.approx(k, rel=1e-6) and s.last["k2"] == 1.0
    assert k < 0.9  # it really modulates (a ratio stuck at 1 would give k = 1 - tanh(alpha))
    for n in before:
        if n.startswith("encoder1."):
            assert torch.allclose(after[n], k * before[n], rtol=1e-6, atol=1e-9), n
        else:
            assert torch.equal(after[n], before[n]), n


def test_ogm_coefficients_symmetric_and_only_above_one():
    rho, k1, k2 = ogm_coefficients(2.0, 8.0, 0.5)
    assert rho == 0.25 and k1 == 1.0 and k2 == pytest.approx(1 - math.tanh(0.5 * 4.0))
    assert ogm_coefficients(3.0, 3.0, 0.5) == (1.0, 1.0, 1.0)


def test_ogm_noise_seeded_and_matches_gradient_scale():
    model = Tiny()
    x1, x2, y = batch()
    s = get_strategy("ogm-ge", alpha=0.1, seed=7)
    before, after, _ = step(s, model, x1, x2, y)
    k = {1: s.last["k1"], 2: s.last["k2"]}
    gen = torch.Generator().manual_seed(7)
    for enc in (1, 2):
        for n, p in getattr(model, f"encoder{enc}").named_parameters():
            g = before[f"encoder{enc}.{n}"]
            noise = torch.randn(g.shape, generator=gen) * g.std()
            assert torch.allclose(after[f"encoder{enc}.{n}"], k[enc] * g + noise, atol=1e-6)
    for n in before:  # heads and fusion untouched
        if not n.startswith("encoder"):
            assert torch.equal(after[n], before[n])


def test_ogm_window_and_state_round_trip():
    model = Tiny()
    x1, x2, y = batch()
    s = get_strategy("ogm-ge", modulation_start=2, modulation_end=3)
    before, after, _ = step(s, model, x1, x2, y, epoch=1)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert s.last["modulated"] is False
    step(s, model, x1, x2, y, epoch=2)  # advances the noise generator
    state = s.state_dict()
    _, a1, _ = step(s, model, x1, x2, y, epoch=2)
    s2 = get_strategy("ogm-ge", modulation_start=2, modulation_end=3)
    s2.load_state_dict(state)
    _, a2, _ = step(s2, model, x1, x2, y, epoch=2)
    assert all(torch.equal(a1[n], a2[n]) for n in a1)
    with pytest.raises(ValueError, match="state keys"):
        s2.load_state_dict({"epoch": 1})


@pytest.mark.parametrize("opts", [{"alpha": 0.0}, {"alpha": -1.0}, {"alpha": float("nan")},
                                  {"modulation_start": 0}, {"modulation_start": 5, "modulation_end": 2},
                                  {"beta": 1.0}])
def test_ogm_bad_options(opts):
    with pytest.raises(ValueError):
        get_strategy("ogm-ge", **opts)


def test_ogm_bad_option_type():
    with pytest.raises(TypeError, match="alpha"):
        get_strategy("ogm-ge", alpha="big")
    with pytest.raises(TypeError, match="ge"):
        get_strategy("ogm-ge", ge=1)


def test_ogm_needs_linear_fusion():
    model = Tiny()
    model.fusion = nn.Bilinear(4, 3, C)
    x1, x2, y = batch()
    s = get_strategy("ogm-ge")
    with pytest.raises(ValueError, match="not linear"):
        step(s, model, x1, x2, y)


# ---- MMPareto ---------------------------------------------------------------------------------

def test_pareto_weights_hand_example():
    g_m, g_u = torch.tensor([1.0, 0.0]), torch.tensor([-0.5, 1.0])  # g_m . g_u = -0.5
    a_m, a_u = pareto_weights(g_m, g_u)
    # min_a ||a g_m + (1-a) g_u||^2: a = (g_u - g_m).g_u / ||g_m - g_u||^2 = 1.75 / 3.25
    assert a_m == pytest.approx(1.75 / 3.25) and a_u == pytest.approx(1.5 / 3.25)
    d = a_m * g_m + a_u * g_u
    assert float(d @ g_m) >= -1e-12 and float(d @ g_u) >= -1e-12
    assert pareto_weights(torch.tensor([1.0, 1.0]), torch.tensor([1.0, -0.5])) == (0.5, 0.5)


def test_pareto_weights_min_norm_and_common_direction_random():
    gen = torch.Generator().manual_seed(3)
    grid = torch.linspace(0, 1, 2001, dtype=torch.float64)
    seen = 0
    for _ in range(200):
        g_m = torch.randn(6, generator=gen, dtype=torch.float64)
        g_u = torch.randn(6, generator=gen, dtype=torch.float64) * 3
        if float(g_m @ g_u) >= 0:
            continue
        seen += 1
        a_m, a_u = pareto_weights(g_m, g_u)
        d = a_m * g_m + a_u * g_u
        assert float(d @ g_m) >= -1e-9 and float(d @ g_u) >= -1e-9
        norms = (grid[:, None] * g_m + (1 - grid[:, None]) * g_u).norm(dim=1)
        assert float(d.norm()) <= float(norms.min()) + 1e-9
    assert seen > 50


def _hand_grads(model, x1, x2, y, k):
    params = list(getattr(model, f"encoder{k}").parameters())
    out = model.outputs(x1, x2)
    g_m = torch.autograd.grad(F.cross_entropy(out.fused, y), params, retain_graph=True)
    lu = F.cross_entropy(out.logits1 if k == 1 else out.logits2, y)
    g_u = torch.autograd.grad(lu, params)
    return torch.cat([g.reshape(-1) for g in g_m]), torch.cat([g.reshape(-1) for g in g_u])


@pytest.mark.parametrize("seed", [0, 5])
def test_mmpareto_encoder_gradient_matches_algorithm(seed):
    model = Tiny(seed=seed)
    x1, x2, y = batch(seed + 1)
    s = get_strategy("mmpareto")
    hand = {k: _hand_grads(model, x1, x2, y, k) for k in (1, 2)}
    before, after, _ = step(s, model, x1, x2, y)
    conflicts = 0
    for k in (1, 2):
        g_m, g_u = hand[k]
        dot = float(g_m @ g_u)
        if dot < 0:
            conflicts += 1
            diff = g_m - g_u
            a = min(1.0, max(0.0, float(-diff @ g_u) / float(diff @ diff)))
        else:
            a = 0.5
        h = 2 * (a * g_m + (1 - a) * g_u)
        h = 1.5 * max(1.0, float((g_m + g_u).norm() / h.norm())) * h
        got = torch.cat([after[f"encoder{k}.{n}"].reshape(-1)
                         for n, _ in getattr(model, f"encoder{k}").named_parameters()])
        assert torch.allclose(got, h, rtol=1e-5, atol=1e-7)
        assert s.last[k]["conflict"] == (dot < 0)
        if dot < 0:  # the min-norm direction before rescaling descends both objectives
            d = a * g_m + (1 - a) * g_u
            assert float(d @ g_m) >= -1e-7 and float(d @ g_u) >= -1e-7
    for n in before:
        if not n.startswith("encoder"):
            assert torch.equal(after[n], before[n]), n
    if seed == 0:
        assert conflicts >= 1, "scripted batch must produce a conflict"


def test_mmpareto_options_and_state():
    for bad in ({"gamma": 0.0}, {"gamma": -1.0}, {"alpha": 1.0}):
        with pytest.raises(ValueError):
            get_strategy("mmpareto", **bad)
    with pytest.raises(TypeError):
        get_strategy("mmpareto", rescale="yes")
    s = get_strategy("mmpareto", gamma=1.0, rescale=False)
    assert s.state_dict() == {}
    s.load_state_dict({})
    with pytest.raises(ValueError):
        s.load_state_dict({"x": 1})


# ---- PMR --------------------------------------------------------------------------------------

def _pmr_epoch1(s, model, x1, x2, y):
    s.setup(model, n_classes=C, epochs=5)
    s.on_epoch_start(1, model)
    out = model.outputs(x1, x2)
    loss = s.loss(out, y, model)
    # no prototypes yet: the first epoch is the fused cross-entropy alone
    assert torch.equal(loss, F.cross_entropy(out.fused, y))
    return out


def _class_means(z, y):
    return torch.stack([z[y == k].mean(0) for k in range(C)])


def test_pmr_loss_matches_equations():
    model = Tiny()
    with torch.no_grad():
        model.encoder1[0].weight.copy_(torch.eye(4, 5))
        model.encoder1[0].bias.zero_()
    x1, x2, y = batch()
    beta, gamma = 0.7, 0.3
    s = get_strategy("pmr", beta=beta, gamma=gamma, entropy_epochs=2)
    out1 = _pmr_epoch1(s, model, x1, x2, y)
    s.on_epoch_start(2, model)
    c1, c2 = _class_means(out1.z1.detach(), y), _class_means(out1.z2.detach(), y)
    assert torch.allclose(s.protos[0].float(), c1, atol=1e-6)
    assert torch.allclose(s.protos[1].float(), c2, atol=1e-6)

    with torch.no_grad():  # the encoder moves between epochs (as after optimizer steps)
        model.encoder1[0].bias += 0.3
    out = model.outputs(x1, x2)
    loss = s.loss(out, y, model)
    # by hand: p_k = exp(-||z - c_k||) / sum_j exp(-||z - c_j||)
    def probs(z, c):
        d = ((z[:, None, :] - c[None, :, :]) ** 2).sum(-1).sqrt()
        e = torch.exp(-d)
        return e / e.sum(1, keepdim=True)
    p1, p2 = probs(out.z1, c1), probs(out.z2, c2)
    n = torch.arange(len(y))
    rho = (p1[n, y].sum() / p2[n, y].sum()).item()
    assert rho > 1.05, "scripted batch must make modality 1 faster"
    b2, g1 = beta * (rho - 1), gamma * (rho - 1)
    pce2 = -torch.log(p2[n, y]).mean()
    ent1 = -(p1 * torch.log(p1)).sum(1).mean()
    expected = F.cross_entropy(out.fused, y) + b2 * pce2 - g1 * ent1
    assert s.last["rho"] == pytest.approx(rho, rel=1e-5)
    assert s.last["beta1"] == 0.0 and s.last["gamma2"] == 0.0
    assert s.last["beta2"] == pytest.approx(b2, rel=1e-5)
    assert s.last["gamma1"] == pytest.approx(g1, rel=1e-5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)

    # epoch 3: past entropy_epochs -> no entropy term; prototypes blended with momentum 0.2
    s.on_epoch_start(3, model)
    c1b = _class_means(out.z1.detach(), y)
    assert not torch.allclose(c1b, c1, atol=1e-2)
    assert torch.allclose(s.protos[0].float(), 0.8 * c1b + 0.2 * c1, atol=1e-6)
    s.loss(model.outputs(x1, x2), y, model)
    assert s.last["gamma1"] == 0.0 and s.last["beta2"] > 0


def test_pmr_coefficients_symmetric():
    assert pmr_coefficients(2.0, 1.0, 0.5, True) == (0.0, 1.0, 0.5, 0.0)
    assert pmr_coefficients(0.5, 1.0, 0.5, True) == (1.0, 0.0, 0.0, 0.5)
    assert pmr_coefficients(0.5, 1.0, 0.5, False) == (1.0, 0.0, 0.0, 0.0)
    assert pmr_coefficients(1.0, 1.0, 0.5, True) == (0.0, 0.0, 0.0, 0.0)


def test_pmr_state_round_trip_and_validation():
    model = Tiny()
    x1, x2, y = batch()
    s = get_strategy("pmr")
    _pmr_epoch1(s, model, x1, x2, y)
    state = s.state_dict()
    s2 = get_strategy("pmr")
    s2.setup(model, n_classes=C, epochs=5)
    s2.load_state_dict(state)
    for st in (s, s2):
        st.on_epoch_start(2, model)
    out = model.outputs(x1, x2)
    assert s.loss(out, y, model).item() == s2.loss(out, y, model).item()
    assert s.last == s2.last and s.last
    with pytest.raises(ValueError, match="state keys"):
        s2.load_state_dict({"epoch": 2})
    for bad in ({"beta": -1.0}, {"prototype_momentum": 1.0}, {"prototype_momentum": 1.5},
                {"entropy_epochs": -1}, {"alpha": 1.0}):
        with pytest.raises(ValueError):
            get_strategy("pmr", **bad)
    with pytest.raises(ValueError, match="labels"):
        s.loss(out, y + C, model)


# ---- MLA --------------------------------------------------------------------------------------

def test_mla_alternates_and_projects_shared_head_gradient():
    model = Tiny(shared_head=True, d2=4)
    x1, x2, y = batch()
    alpha = 0.5
    s = get_strategy("mla", alpha=alpha, normalize=False)
    s.setup(model, n_classes=C, epochs=1)
    # step 0: modality 1 through the shared head, no projection yet
    before, after, out0 = step(s, model, x1, x2, y)
    assert s.modality == 1
    assert "encoder2.0.weight" not in before and "fusion.fc.weight" not in before
    assert torch.equal(after["head1.weight"], before["head1.weight"])
    hand0 = torch.autograd.grad(F.cross_entropy(model.head1(model.encoder1(x1)), y),
                                model.head1.weight)[0]
    assert torch.allclose(before["head1.weight"], hand0, atol=1e-7)
    # step 1: modality 2; gradient projected by P = I - s s^T / (alpha + s^T s), s = mean z1
    before, after, _ = step(s, model, x1, x2, y)
    assert s.modality == 2
    assert "encoder1.0.weight" not in before
    s0 = out0.z1.detach().mean(0).double()
    P = torch.eye(4, dtype=torch.float64) - torch.outer(s0, s0) / (alpha + s0 @ s0)
    expected = (before["head1.weight"].double() @ P).float()
    assert torch.allclose(after["head1.weight"], expected, atol=1e-7)
    # the modified gradient leaves the head's response to s0 nearly unchanged
    assert (after["head1.weight"].double() @ s0).norm() < \
        0.5 * (before["head1.weight"].double() @ s0).norm()
    assert torch.equal(after["head1.bias"], before["head1.bias"])


def test_mla_normalize_state_and_requirements():
    model = Tiny(shared_head=True, d2=4)
    x1, x2, y = batch()
    s = get_strategy("mla")
    s.setup(model, n_classes=C, epochs=1)
    for _ in range(3):
        step(s, model, x1, x2, y)
    assert torch.linalg.matrix_norm(s.P).item() == pytest.approx(1.0)
    state = s.state_dict()
    _, a1, _ = step(s, model, x1, x2, y)
    s2 = get_strategy("mla")
    s2.load_state_dict(state)
    _, a2, _ = step(s2, model, x1, x2, y)
    assert all(torch.equal(a1[n], a2[n]) for n in a1)
    with pytest.raises(ValueError, match="shared by both"):
        get_strategy("mla").setup(Tiny(), n_classes=C, epochs=1)
    with pytest.raises(ValueError, match="same width"):
        o = model.outputs(x1, x2)
        get_strategy("mla").loss(o._replace(z2=o.z2[:, :3]), y, model)
    for bad in ({"alpha": 0.0}, {"beta": 1.0}):
        with pytest.raises(ValueError):
            get_strategy("mla", **bad)


def test_mla_fused_logits_entropy_weights():
    model = Tiny(shared_head=True, d2=4)
    x1, x2, y = batch()
    out = model.outputs(x1, x2)
    l1, l2 = out.logits1, out.logits2
    def ent(l):
        p = torch.softmax(l, 1)
        return -(p * torch.log(p)).sum(1)
    e1, e2 = ent(l1), ent(l2)
    mx = torch.maximum(e1, e2)
    w1, w2 = torch.exp(mx - e1), torch.exp(mx - e2)
    expected = (w1 / (w1 + w2))[:, None] * l1 + (w2 / (w1 + w2))[:, None] * l2
    assert torch.allclose(mla_fused_logits(l1, l2), expected, atol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        mla_fused_logits(l1, l2[:, :2])


# ---- AGM --------------------------------------------------------------------------------------

def test_agm_coefficients_by_hand():
    # s = (0.5, 1.0), running means (0.6, 0.9), alpha 1:
    # r1 = e^0.5 = 1.648721, rbar1 = e^0.3 = 1.349859, k1 = e^(1.349859 - 1.648721) = e^-0.298862 = 0.741661
    # r2 = e^-0.5 = 0.606531, rbar2 = e^-0.3 = 0.740818, k2 = e^(0.740818 - 0.606531) = e^0.134287 = 1.143721
    k1, k2 = agm_coefficients(0.5, 1.0, 0.6, 0.9, 1.0)
    assert k1 == pytest.approx(0.741661, abs=2e-6) and k2 == pytest.approx(1.143721, abs=2e-6)
    # the modality further ahead than usual (1: lower score) is slowed, the other sped up
    assert k1 < 1 < k2
    # at its running average nothing is modulated; alpha scales the exponent
    assert agm_coefficients(0.7, 0.4, 0.7, 0.4, 3.0) == (1.0, 1.0)
    k1a, k2a = agm_coefficients(0.5, 1.0, 0.6, 0.9, 2.0)
    assert k1a == pytest.approx(k1 ** 2, rel=1e-12) and k2a == pytest.approx(k2 ** 2, rel=1e-12)
    # the exponent is capped at 10 (the public code's cap): alpha * 10 at most
    assert agm_coefficients(50.0, 0.0, 0.0, 50.0, 0.5)[0] == pytest.approx(math.exp(5.0))
    with pytest.raises(ValueError, match="finite"):
        agm_coefficients(float("nan"), 1.0, 1.0, 1.0, 1.0)


def _hand_phis(model, z1, z2):
    """The two Shapley mono-modal responses of the concat fusion, written out from the weights:
    muting modality m gives its encoder's output on a zero input, tanh(bias_m)."""
    W, b = model.fusion.fc.weight, model.fusion.fc.bias
    W1, W2 = W[:, :4], W[:, 4:]
    c1, c2 = torch.tanh(model.encoder1[0].bias), torch.tanh(model.encoder2[0].bias)
    full = z1 @ W1.T + z2 @ W2.T + b
    only1 = z1 @ W1.T + c2 @ W2.T + b            # f(x1, 0)
    only2 = c1 @ W1.T + z2 @ W2.T + b            # f(0, x2)
    return (full - only2 + only1) / 2, (full - only1 + only2) / 2


def _score(phi, y):
    return -torch.log(torch.softmax(phi, 1)[torch.arange(len(y)), y]).mean().item()


def test_agm_scripted_batches_match_hand_shapley_and_coefficients():
    model = Tiny()
    x1, x2, y = batch()
    x1b, x2b, yb = batch(seed=5)
    alpha = 1.5
    s = get_strategy("agm", alpha=alpha)
    s.setup(model, n_classes=C, epochs=2)
    # first batch: no history, so k = 1, and the gradient is the plain fused cross-entropy's
    before, _, out = step(s, model, x1, x2, y)
    model.zero_grad()
    F.cross_entropy(model.outputs(x1, x2).fused, y).backward()
    for n, p in model.named_parameters():
        if n in before:
            assert torch.allclose(before[n], p.grad, atol=1e-6), n
    with torch.no_grad():
        p1, p2 = _hand_phis(model, out.z1, out.z2)
        assert torch.allclose(p1 + p2, out.fused, atol=1e-6)
        a1, a2 = _score(p1, y), _score(p2, y)
    assert (s.last["s1"], s.last["s2"]) == (pytest.approx(a1, rel=1e-6), pytest.approx(a2, rel=1e-6))
    assert s.last["k1"] == s.last["k2"] == 1.0
    # second batch: coefficients from this batch's scores against the first batch's
    before, _, out = step(s, model, x1b, x2b, yb)
    with torch.no_grad():
        p1, p2 = _hand_phis(model, out.z1, out.z2)
        b1, b2 = _score(p1, yb), _score(p2, yb)
    k1 = math.exp(alpha * (math.exp(a2 - a1) - math.exp(b2 - b1)))
    k2 = math.exp(alpha * (math.exp(a1 - a2) - math.exp(b1 - b2)))
    assert s.last["k1"] == pytest.approx(k1, rel=1e-5) and s.last["k2"] == pytest.approx(k2, rel=1e-5)
    assert abs(k1 - 1) > 0.02 and abs(k2 - 1) > 0.02, "the scripted batches must modulate"
    assert s.sbar == [pytest.approx((a1 + b1) / 2, rel=1e-6), pytest.approx((a2 + b2) / 2, rel=1e-6)]
    # the gradient: that of sum_i <delta_i, k1 phi1_i + k2 phi2_i> / n, delta the fused
    # cross-entropy's gradient at the logits (held fixed), the phis written out by hand
    model.zero_grad()
    o = model.outputs(x1b, x2b)
    p1, p2 = _hand_phis(model, o.z1, o.z2)
    delta = (torch.softmax(o.fused, 1) - F.one_hot(yb, C)).detach() / len(yb)
    (delta * (k1 * p1 + k2 * p2)).sum().backward()
    for n, p in model.named_parameters():
        if n in before:
            assert torch.allclose(before[n], p.grad, rtol=1e-5, atol=1e-7), n


def test_agm_bias_free_encoders_scale_each_encoder_by_its_coefficient():
    """Encoders that map a zero input to zero: phi_m = W_m z_m + b / 2, so each encoder's weight
    gradient is k_m times the plain one and the fusion bias's is (k1 + k2) / 2 times it."""
    model = Tiny()
    with torch.no_grad():
        model.encoder1[0].bias.zero_()
        model.encoder2[0].bias.zero_()
    x1, x2, y = batch()
    s = get_strategy("agm", alpha=0.8)
    s.setup(model, n_classes=C, epochs=1)
    s.load_state_dict({"epoch": 0, "batches": 3, "sbar": [1.4, 0.9]})
    before, _, _ = step(s, model, x1, x2, y)
    k1, k2 = s.last["k1"], s.last["k2"]
    assert abs(k1 - k2) > 0.05
    model.zero_grad()
    F.cross_entropy(model.outputs(x1, x2).fused, y).backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert torch.allclose(before["encoder1.0.weight"], k1 * plain["encoder1.0.weight"], rtol=1e-5, atol=1e-8)
    assert torch.allclose(before["encoder2.0.weight"], k2 * plain["encoder2.0.weight"], rtol=1e-5, atol=1e-8)
    assert torch.allclose(before["fusion.fc.bias"], (k1 + k2) / 2 * plain["fusion.fc.bias"], rtol=1e-5, atol=1e-8)
    assert torch.allclose(before["fusion.fc.weight"][:, :4], k1 * plain["fusion.fc.weight"][:, :4], rtol=1e-5, atol=1e-8)
    assert torch.allclose(before["fusion.fc.weight"][:, 4:], k2 * plain["fusion.fc.weight"][:, 4:], rtol=1e-5, atol=1e-8)
    assert "head1.weight" not in before            # the unimodal heads are not trained


def test_agm_muted_pass_runs_in_eval_mode():
    """The muted input goes through the encoder in eval mode (batch norm uses, and does not
    update, its running statistics) and the encoder is left in training mode."""
    model = Tiny()
    model.encoder1 = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Tanh())
    x1, x2, y = batch()
    s = get_strategy("agm")
    s.setup(model, n_classes=C, epochs=1)
    out = model.outputs(x1, x2)
    bn = model.encoder1[1]
    stats = bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)
    s.loss(out, y, model)
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert int(bn.num_batches_tracked) == stats[2] and model.encoder1.training
    with torch.no_grad():   # phi1 + phi2 still add up to the fused logits
        bn.eval()
        c1 = model.encoder1(torch.zeros(1, 5))
        bn.train()
        c2 = model.encoder2(torch.zeros(1, 2))
        from multimodal_sched.methods.agm import shapley_responses
        p1, p2 = shapley_responses(model.fusion, out.z1, out.z2, c1, c2)
        assert torch.allclose(p1 + p2, out.fused, atol=1e-6)
        assert s.last["s1"] == pytest.approx(_score(p1, y), rel=1e-6)


def test_agm_any_fusion_window_state_and_validation():
    model = Tiny()
    model.fusion = nn.Bilinear(4, 3, C)   # AGM needs no linear fusion
    x1, x2, y = batch()
    s = get_strategy("agm", modulation_start=2, modulation_end=2)
    with pytest.raises(RuntimeError, match="setup"):
        s.loss(model.outputs(x1, x2), y, model)
    s.setup(model, n_classes=C, epochs=3)
    s.load_state_dict({"epoch": 0, "batches": 2, "sbar": [0.5, 2.0]})
    before, _, out = step(s, model, x1, x2, y, epoch=1)   # outside the window: the plain loss
    assert s.last["modulated"] is False and s.last["k1"] != 1.0 and s.batches == 3
    model.zero_grad()
    F.cross_entropy(model.outputs(x1, x2).fused, y).backward()
    assert all(torch.equal(before[n], p.grad) for n, p in model.named_parameters() if n in before)
    state = s.state_dict()
    b1, _, _ = step(s, model, x1, x2, y, epoch=2)
    assert s.last["modulated"] is True
    s2 = get_strategy("agm", modulation_start=2, modulation_end=2)
    s2.setup(model, n_classes=C, epochs=3)
    s2.load_state_dict(state)
    b2, _, _ = step(s2, model, x1, x2, y, epoch=2)
    assert all(torch.equal(b1[n], b2[n]) for n in b1)
    with pytest.raises(ValueError, match="state keys"):
        s2.load_state_dict({"epoch": 1})
    for bad in ({"alpha": 0.0}, {"alpha": float("inf")}, {"modulation_start": 0},
                {"modulation_start": 4, "modulation_end": 2}, {"ge": True}):
        with pytest.raises(ValueError):
            get_strategy("agm", **bad)
    with pytest.raises(TypeError, match="alpha"):
        get_strategy("agm", alpha="big")
    del model.fusion
    with pytest.raises(ValueError, match="fusion"):
        get_strategy("agm").setup(model, n_classes=C, epochs=1)


# ---- the same strategies under DDP (gloo, 2 CPU processes) -------------------------------------

DDP_CASES = {  # name -> (options, model options, epochs run: one step each)
    "ogm-ge": ({"alpha": 0.4, "seed": 3}, {"seed": 1}, [1]),
    "mmpareto": ({}, {"seed": 1}, [1]),
    "pmr": ({"beta": 0.7, "gamma": 0.3}, {"seed": 1}, [1, 2]),
    "mla": ({"alpha": 0.5}, {"seed": 1, "shared_head": True, "d2": 4}, [1, 1, 1]),
    "agm": ({"alpha": 2.0}, {"seed": 1}, [1, 1]),
}
#: AGM's coefficients need a history: start it from these running means (as after a resume)
AGM_HISTORY = {"epoch": 0, "batches": 5, "sbar": [0.9, 1.3]}


def _run_case(name, model, x1, x2, y):
    opts, _, epochs = DDP_CASES[name]
    s = get_strategy(name, **opts)
    s.setup(model, n_classes=C, epochs=len(epochs))
    if name == "agm":
        s.load_state_dict(AGM_HISTORY)
    grads = []
    for epoch in epochs:
        s.on_epoch_start(epoch, model)
        model.zero_grad()
        out = model(x1, x2)
        s.loss(out, y, model).backward()
        s.after_backward(model, out, y)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    return grads, s.last


def _ddp_worker(rank, world, port, out_dir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x1, x2, y = batch(n=12)
        res = {}
        for name, (_, mopts, _) in DDP_CASES.items():
            model = DDP(Tiny(**mopts), find_unused_parameters=True)
            grads, _ = _run_case(name, model, x1[rank::world], x2[rank::world], y[rank::world])
            res[name] = [{n.removeprefix("module."): g for n, g in step.items()} for step in grads]
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_strategies_under_ddp_match_single_process(tmp_path):
    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    x1, x2, y = batch(n=12)
    for name, (_, mopts, _) in DDP_CASES.items():
        single, last = _run_case(name, Tiny(**mopts), x1, x2, y)
        if name == "ogm-ge":  # the case exercises the modulation ...
            assert last["k1"] < 1
        if name == "mmpareto":  # ... and the Pareto branch on both encoders
            assert last[1]["conflict"] and last[2]["conflict"]
        if name == "agm":  # ... and AGM's coefficients away from 1
            assert abs(last["k1"] - 1) > 0.05 and abs(last["k2"] - 1) > 0.05
        for i, step_grads in enumerate(single):
            for n, g in step_grads.items():
                for r in (0, 1):
                    got = ranks[r][name][i][n]
                    assert torch.allclose(got, g, rtol=1e-4, atol=1e-6), (name, i, n, r)


# ---- G-Blending -------------------------------------------------------------------------------

def _losses(tf, t1, t2, vf, v1, v2):
    return {"train_loss_fused": tf, "train_loss_1": t1, "train_loss_2": t2,
            "val_loss_fused": vf, "val_loss_1": v1, "val_loss_2": v2}


def test_gblending_weights_by_hand():
    s = get_strategy("gblending", super_epoch=2)
    s.on_epoch_end(1, _losses(1.0, 1.2, 1.5, 1.1, 1.3, 1.6))
    s.on_epoch_end(2, _losses(0.5, 0.6, 1.0, 1.0, 0.9, 1.2))  # not yet a super-epoch
    assert s.weights == [1.0, 1.0, 1.0]
    s.on_epoch_end(3, _losses(0.4, 0.8, 1.1, 0.9, 1.0, 1.4))
    # G = v0 - v1, O = (v1 - t1) - (v0 - t0), r = G / O^2, w = r / (sum r / 2)
    G = [1.1 - 0.9, 1.3 - 1.0, 1.6 - 1.4]
    O = [(0.9 - 0.4) - (1.1 - 1.0), (1.0 - 0.8) - (1.3 - 1.2), (1.4 - 1.1) - (1.6 - 1.5)]
    r = [g / o ** 2 for g, o in zip(G, O)]
    z = sum(r) / 2
    assert s.weights == pytest.approx([x / z for x in r])
    assert sum(s.weights) == pytest.approx(2.0)
    model = Tiny()
    x1, x2, y = batch()
    out = model.outputs(x1, x2)
    w = s.weights
    expected = (w[0] * F.cross_entropy(out.fused, y) + w[1] * F.cross_entropy(out.logits1, y)
                + w[2] * F.cross_entropy(out.logits2, y))
    assert s.loss(out, y, model).item() == pytest.approx(expected.item())
    s2 = get_strategy("gblending", super_epoch=2)
    s2.load_state_dict(s.state_dict())
    assert s2.state_dict() == s.state_dict()


def test_gblending_no_gain_and_validation():
    s = get_strategy("gblending", super_epoch=1)
    s.on_epoch_end(1, _losses(1, 1, 1, 1, 1, 1))
    s.on_epoch_end(2, _losses(0.5, 0.5, 0.5, 1.2, 1.3, 1.1))  # validation got worse everywhere
    assert s.weights == [1.0, 1.0, 1.0]
    s.on_epoch_end(3, _losses(0.5, 0.5, 0.5, 1.0, 1.3, 1.1))  # only the fused head gained
    assert s.weights[1] == 0.0 and s.weights[2] == 0.0 and s.weights[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="val_loss_2"):
        s.on_epoch_end(4, {k: v for k, v in _losses(1, 1, 1, 1, 1, 1).items() if k != "val_loss_2"})
    for bad in ({"super_epoch": 0}, {"min_overfit": 0.0}, {"beta": 1}):
        with pytest.raises(ValueError):
            get_strategy("gblending", **bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_strategies_on_cuda_resume_from_cpu_state(tmp_path):
    dev = torch.device("cuda")
    x1, x2, y = (t.to(dev) for t in batch(n=12))
    for name, (opts, mopts, epochs) in DDP_CASES.items():
        model = Tiny(**mopts).to(dev)
        s = get_strategy(name, **opts)
        s.setup(model, n_classes=C, epochs=3)
        for epoch in epochs:
            step(s, model, x1, x2, y, epoch=epoch)
        torch.save(s.state_dict(), tmp_path / "s.pt")
        _, a1, _ = step(s, model, x1, x2, y, epoch=epochs[-1])
        s2 = get_strategy(name, **opts)
        s2.setup(model, n_classes=C, epochs=3)
        s2.load_state_dict(torch.load(tmp_path / "s.pt", map_location="cpu"))
        _, a2, _ = step(s2, model, x1, x2, y, epoch=epochs[-1])
        for n in a1:
            assert a1[n].device.type == "cuda"
            assert torch.allclose(a1[n], a2[n], atol=1e-6), (name, n)
