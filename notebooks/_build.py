"""Build (and execute) the tutorial notebooks from the cell sources below.

    python notebooks/_build.py                 # write + execute all notebooks, outputs saved
    python notebooks/_build.py 01 04           # only those
    python notebooks/_build.py --no-execute    # write the .ipynb files without outputs

The committed ``.ipynb`` files are the executed output of this script; edit the
cells here, rebuild, and commit both.  ``tests/test_notebooks.py`` re-executes
the committed notebooks top to bottom.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))
CELL_TIMEOUT = 600  # seconds per cell when building (the test uses a tighter one)


def _cells(spec):
    cells = []
    for kind, src in spec:
        src = src.strip("\n")
        cells.append(new_markdown_cell(src) if kind == "md" else new_code_cell(src))
    return cells


def md(s):
    return ("md", s)


def code(s):
    return ("code", s)


SETUP = """\
%matplotlib inline
import warnings

import numpy as np
import matplotlib.pyplot as plt

import fastpid
from fastpid import distributions as D

plt.rcParams.update({"figure.dpi": 80, "axes.grid": True, "grid.alpha": 0.3})
np.set_printoptions(precision=4, suppress=True)
print("fastpid", fastpid.__version__, "| methods:", fastpid.available_methods(),
      "| backends:", fastpid.backend_names())"""


# --------------------------------------------------------------------------- 01
NB01 = [
    md("""
# 1 · PID basics: what R, U1, U2 and S mean

Two sources $X_1, X_2$ carry information about a target $Y$: $I(X_1,X_2;Y)$ bits in total.
The bivariate **partial information decomposition** (PID) splits that total into four non-negative
atoms, all in **bits**:

| atom | name | read it as |
|---|---|---|
| `R` | redundancy | what either source alone tells about $Y$ |
| `U1` | unique information of $X_1$ | what only $X_1$ tells |
| `U2` | unique information of $X_2$ | what only $X_2$ tells |
| `S` | synergy | what only the two *together* tell |

with $I(X_1,X_2;Y) = R + U_1 + U_2 + S$, $I(X_1;Y) = R + U_1$ and $I(X_2;Y) = R + U_2$.
`fastpid` computes the BROJA decomposition (Bertschinger et al., 2014): it finds the distribution
$q$ with the same pairwise marginals $p(x_1,y)$, $p(x_2,y)$ that maximizes $H_q(Y\\mid X_1,X_2)$;
whatever $p$ knows about $Y$ beyond $q$ is synergy.

The input is a joint table `P[x1, x2, y]` (probabilities or counts), or a batch `(..., n1, n2, ny)`.
"""),
    code(SETUP),
    md("""
## The canonical gates

`fastpid.distributions` has the textbook examples, with their known atoms in `D.KNOWN`.
The default method, `"exact"`, is a certified interior-point solver: it reports the duality
`gap` (bits) and the marginal `violation` of its $q$.
"""),
    code("""
r = fastpid.pid(D.and_())
print(r)
print(f"R+U1+U2+S = {r.R + r.U1 + r.U2 + r.S:.6f} = I = {r.I:.6f}")
print(f"R+U1      = {r.R + r.U1:.6f} = I1 = {r.I1:.6f}")
"""),
    code("""
print(f"{'gate':6s} {'R':>7s} {'U1':>7s} {'U2':>7s} {'S':>7s} {'I':>7s}   max|error| vs known")
for name, known in D.KNOWN.items():
    r = fastpid.pid(getattr(D, name)())
    err = max(abs(getattr(r, k) - v) for k, v in known.items())
    print(f"{name:6s} {r.R:7.4f} {r.U1:7.4f} {r.U2:7.4f} {r.S:7.4f} {r.I:7.4f}   {err:.1e}")
"""),
    md("""
* **xor** ($Y = X_1 \\oplus X_2$): neither bit alone says anything; together they give the full bit → pure synergy.
* **and / or**: $X_1$ and $X_2$ are independent, yet both tell the same thing about $Y$
  ("if my bit is 0, $Y$ is 0"): $R = h(1/4) - 1/2 \\approx 0.311$ bits, and the other half bit is synergy.
* **rdn** ($X_1 = X_2 = Y$): one bit, said twice → pure redundancy.
* **unq** ($Y = X_1$): all of it is unique to $X_1$.
* **copy** ($Y = (X_1, X_2)$): each source contributes its own bit → $U_1 = U_2 = 1$.

## Atoms as noise grows

`D.noisy(P, eps)` mixes a gate with the uniform distribution: $(1-\\varepsilon)P + \\varepsilon\\,U$.
Stacking the noise levels gives a batch `(21, n1, n2, ny)` that `pid` solves in one call; every
field of the result is then an array over the batch.
"""),
    code("""
eps = np.linspace(0, 1, 21)
gates = ["xor", "and_", "rdn", "copy"]
fig, axes = plt.subplots(1, 4, figsize=(14, 3.2), sharey=False)
for ax, name in zip(axes, gates):
    batch = np.stack([D.noisy(getattr(D, name)(), e) for e in eps])
    r = fastpid.pid(batch)
    ax.stackplot(eps, r.R, r.U1, r.U2, r.S, labels=["R", "U1", "U2", "S"],
                 colors=["tab:blue", "tab:green", "tab:olive", "tab:red"], alpha=0.8)
    ax.plot(eps, r.I, "k--", lw=1, label="I(X1,X2;Y)")
    ax.set_title(f"{name}  (batch {batch.shape}, converged {int(r.converged.sum())}/{r.converged.size})",
                 fontsize=9)
    ax.set_xlabel("noise ε")
axes[0].set_ylabel("bits")
axes[-1].legend(fontsize=8, loc="upper right")
fig.tight_layout()
"""),
    md("""
Each panel's title counts the solves that certified their duality gap; `pid` reports any that did
not with a `ConvergenceWarning` (and `converged=False` for that entry) instead of hiding it.
The stacked atoms always add up to the dashed total $I(X_1,X_2;Y)$, and everything goes to zero at
$\\varepsilon = 1$ (pure noise). The *character* of a gate survives moderate noise: xor stays
synergistic and copy stays unique. For rdn and copy a small amount of synergy appears at intermediate
noise: mixing in the uniform distribution breaks the "one copy of the bit" structure, so part of what
the pair says is no longer available from either source alone.

## PID on counts from samples

With data you have samples, not a distribution. `fastpid.joint_histogram(x1, x2, y)` turns three
1-D label arrays (any sortable labels) into a count tensor plus the label of each index; `pid`
accepts counts directly. Below: a noisy AND gate whose labels are strings and integers.
"""),
    code("""
rng = np.random.default_rng(0)

def sample_noisy_and(n, flip=0.05):
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    y = (a & b) ^ (rng.random(n) < flip)
    x1 = np.where(a == 1, "on", "off")        # string labels
    x2 = 10 * b                               # labels 0 and 10
    return x1, x2, y.astype(int)

counts, (l1, l2, ly) = fastpid.joint_histogram(*sample_noisy_and(5000))
print("labels:", l1, l2, ly)
print("counts[x1, x2, y]:\\n", counts)
print(fastpid.pid(counts))
"""),
    md("""
The population distribution is known here, so we can watch the plug-in estimate approach it as the
sample grows. Histograms of the same shape stack into one batch: here 7 sample sizes × 20 draws,
solved in one call.
"""),
    code("""
# population distribution of the same process
truth = np.zeros((2, 2, 2))
for a in (0, 1):
    for b in (0, 1):
        truth[a, b, a & b] += 0.25 * 0.95
        truth[a, b, 1 - (a & b)] += 0.25 * 0.05
t = fastpid.pid(truth)

sizes = np.array([50, 100, 300, 1_000, 3_000, 10_000, 100_000])
reps = 20
hists = np.stack([[fastpid.joint_histogram(*sample_noisy_and(n))[0] for _ in range(reps)] for n in sizes])
print("batch of histograms:", hists.shape)
r = fastpid.pid(hists)                       # atoms have shape (len(sizes), reps)

fig, ax = plt.subplots(figsize=(6.5, 3.5))
for k, c in zip(["R", "U1", "S"], ["tab:blue", "tab:green", "tab:red"]):
    v = getattr(r, k)
    ax.errorbar(sizes, v.mean(1), yerr=v.std(1), marker="o", capsize=3, color=c, label=f"{k} (plug-in)")
    ax.axhline(getattr(t, k), color=c, ls=":", lw=1)
ax.set_xscale("log"); ax.set_xlabel("samples"); ax.set_ylabel("bits")
ax.set_title("noisy AND: mean ± sd over 20 draws; dotted = population value", fontsize=9)
ax.legend(fontsize=8); fig.tight_layout()
"""),
    md("""
With few samples the plug-in atoms are noisy **and biased**: sampling noise looks like structure, so
unique information appears that the population does not have ($U_1 > 0$), and redundancy and synergy
are off. From about $10^4$ samples on, the estimates sit on the population values.

For estimates with bias correction, bootstrap intervals and permutation p-values (and binning of
continuous features), use `fastpid.estimate.pid_from_samples`:
"""),
    code("""
from fastpid.estimate import pid_from_samples

x1, x2, y = sample_noisy_and(1000)
est = pid_from_samples(x1, x2, y, n_boot=100, bias_correction="bootstrap", seed=0)
print(est)
print(f"population:  R={t.R:.4f}  U1={t.U1:.4f}  U2={t.U2:.4f}  S={t.S:.4f}")
"""),
]

# --------------------------------------------------------------------------- 02
NB02 = [
    md("""
# 2 · Solvers compared: exact vs FastPID vs CVX

`fastpid.pid` has four methods, one result type:

| `method=` | what it is | accuracy |
|---|---|---|
| `"exact"` | primal-dual interior point (Numba) with a **certified duality gap** | gap reported in bits |
| `"cvx"` | the conic program in CVXPY (SCS by default, `solver="CLARABEL"` selectable) | the solver's status |
| `"fastpid"` | the paper's Algorithm 2: analytic start, Adam on softmax logits, `sinkhorn_iters` Sinkhorn sweeps per projection | no certificate |
| `"analytic"` | the closed-form start $q = p(x_1,y)\\,p(x_2,y)/p(y)$ alone | a proxy |

This notebook drives the benchmark package `fastpid_bench` (the code behind `fastpid-bench` and the
paper's tables) with a **quick** configuration, so it runs in seconds; run
`fastpid-bench --help` for the full-size tables. Times below are from whatever machine executed the
notebook and are only indicative.
"""),
    code(SETUP + """

from rich.console import Console
from fastpid_bench import problems, report, runner, suites

progress = report.progress_factory(False)   # no progress bars in a notebook
console = Console(width=130)
"""),
    md("""
## One problem, every method

The paper's synthetic task: $X_1, X_2 \\sim N(0,1)$, $Y = X_1 + 0.5X_2 + 0.4X_1^2 + 0.2X_2^2 + 0.5\\,\\varepsilon$,
discretized into 8 × 8 × 4 equal-mass bins from 20,000 samples. `runner.measure` times a solve
(after a JIT warm-up) and keeps the solver's own diagnostics.
"""),
    code("""
prob = problems.gaussian_problem(8, 4, samples=20_000, seed=0)
print(prob.name, "counts shape", prob.counts.shape)
print(f"{'method':13s} {'R':>7s} {'U1':>7s} {'U2':>7s} {'S':>7s}  {'time (s)':>9s} {'iters':>6s} "
      f"{'violation':>9s} {'gap':>9s}  converged  status")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", fastpid.ConvergenceWarning)  # measure() counts them; shown below
    for m in ["exact", "cvx-clarabel", "cvx-scs", "fastpid", "analytic"]:
        runner.warm_up(m)
        r = runner.measure(prob.counts, m, repeat=2)
        a = r.atoms
        print(f"{m:13s} {a['R']:7.4f} {a['U1']:7.4f} {a['U2']:7.4f} {a['S']:7.4f}  {r.time:9.4f} "
              f"{r.iterations:6.0f} {r.violation:9.1e} {r.gap:9.1e}  {bool(r.converged)!s:9s}  {r.status}")
"""),
    md("""
`exact` certifies its answer (duality gap in bits, marginal violation at machine precision). CVX with
CLARABEL agrees with it to every printed digit; SCS, a first-order method, needs thousands of
iterations to get there. `analytic` is only the closed-form starting point. FastPID with the paper's
defaults stops with a marginal violation of order $10^{-2}$ — its $q$ is not in the feasible set —
and its atoms are no closer to the optimum than the analytic start. The last section shows why.

## The gates and Gaussian tables (Tables VI and VII, quick size)

Each atom is scored by its mean absolute error (MAE, bits) against a *reference*: the most
accurate other solver that certified its answer (never the method being scored).
"""),
    code("""
cfg = suites.Config.quick_defaults(["exact", "fastpid", "cvx-scs", "cvx-clarabel", "analytic"])
cfg.dx = [4, 8, 16]
with warnings.catch_warnings():
    warnings.simplefilter("ignore", fastpid.ConvergenceWarning)  # recorded per row ("Conv." column)
    gate_rows, _ = suites.run_gates(cfg, progress=progress)
    gauss_rows, _ = suites.run_gaussian(cfg, progress=progress)
report.print_tables(gate_rows + gauss_rows, console=console)
"""),
    code("""
colors = report.COLORS
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
ax = axes[0]
for m in cfg.methods:
    rs = [r for r in gauss_rows if r["method"] == m]
    ax.plot([r["size"] for r in rs], [r["time_s"] for r in rs], "o-", color=colors.get(m), label=m)
ax.set_xscale("log"); ax.set_yscale("log")
ax.set_xlabel("cells n1·n2·ny"); ax.set_ylabel("time of one solve (s)"); ax.set_title("Gaussian task: time")
ax.legend(fontsize=8)
ax = axes[1]
for m in cfg.methods:
    rs = [r for r in gauss_rows if r["method"] == m]
    ax.scatter([r["time_s"] for r in rs], [max(r["mae"], 1e-12) for r in rs], color=colors.get(m), label=m, s=40)
ax.set_xscale("log"); ax.set_yscale("log")
ax.set_xlabel("time (s)"); ax.set_ylabel("MAE vs reference (bits, floor 1e-12)")
ax.set_title("Gaussian task: accuracy vs time (lower left is better)")
fig.tight_layout()
"""),
    md("""
On these problems `exact` and CLARABEL agree to a few $10^{-8}$ bits or better, and `exact` is the
faster of the two. SCS and FastPID are first-order methods: here they are both slower and less accurate, and
FastPID's error stays between 0.02 and 0.11 bit at every size.

## FastPID's drift with iterations and Sinkhorn sweeps (Tables XI and XII)

FastPID optimizes the *unprojected* logits and only approximately projects them onto the
marginal constraints (a fixed number of Sinkhorn sweeps). The bench's ablation runs it on one
Gaussian task with one option changed at a time, and scores it against `exact`:

* `iters`: `max_iter` with the paper's early stop (`tol=1e-5`);
* `iters(no early stop)`: exactly `max_iter` Adam steps;
* `sinkhorn`: `sinkhorn_iters` sweeps per projection (paper: 10).
"""),
    code("""
cfg = suites.Config.quick_defaults(["fastpid"])
cfg.iters_values = [1, 10, 30, 100, 300, 1000, 2000]
cfg.sinkhorn_values = [1, 5, 10, 20, 50]
with warnings.catch_warnings():
    warnings.simplefilter("ignore", fastpid.ConvergenceWarning)
    abl_rows, _ = suites.run_ablation(cfg, which=["iters", "sinkhorn"], progress=progress)
report.print_tables(abl_rows, console=console)
"""),
    code("""
def series(prefix):
    rs = [r for r in abl_rows if r["variant"].split(":")[0] == prefix]
    return (np.array([float(r["variant"].rsplit("=", 1)[1]) for r in rs]),
            np.array([r["mae"] for r in rs]), np.array([r["violation"] for r in rs]))

fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
for prefix, style in [("iters", "o-"), ("iters(no early stop)", "s--")]:
    x, mae, viol = series(prefix)
    axes[0].plot(x, mae, style, label=prefix)
    axes[1].plot(x, np.maximum(viol, 1e-17), style, label=prefix)
x, mae, viol = series("sinkhorn")
axes[2].plot(x, mae, "o-", color="tab:red", label="MAE")
axes[2].plot(x, np.maximum(viol, 1e-17), "s--", color="tab:gray", label="violation")
axes[0].set(xscale="log", yscale="log", xlabel="max_iter (Adam steps)", ylabel="MAE vs exact (bits)",
            title="accuracy vs iterations (10 sweeps)")
axes[1].set(xscale="log", yscale="log", xlabel="max_iter", ylabel="max marginal violation",
            title="feasibility vs iterations")
axes[2].set(xscale="log", yscale="log", xlabel="sinkhorn_iters per projection",
            title="vs Sinkhorn sweeps (paper's max_iter, tol)")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
"""),
    md("""
Reading the plots:

* The first Adam steps improve on the analytic start, but with the paper's 10 Sinkhorn sweeps
  the error stops falling and then **grows again**: the optimizer exploits the part of the
  objective that the inexact projection leaves unconstrained, the marginal violation climbs, and
  the atoms drift away from the true optimum. More iterations are not more accuracy.
* More Sinkhorn sweeps per projection keep $q$ feasible and remove the drift, at a cost per step.
* `method="exact"` has neither knob: it stops when its duality gap certifies the answer.
"""),
]

# --------------------------------------------------------------------------- 03
NB03 = [
    md("""
# 3 · PID-guided scheduling on `cg-digits`

`multimodal_sched.run` implements the paper's Algorithm 1 for two-modality classification:

* **Stage I** trains the two unimodal encoders, each with its own head. Every `probe_every` epochs the
  controller *probes* them: frozen embeddings of a held-out split → PCA → k-means (`k` bins per
  modality) → a joint histogram with the labels → `fastpid.pid`.
  If one modality's unique information dominates ($U_i/U_j >$ `tau_u`), that encoder pauses and the
  other one trains; when synergy falls below `lambda_s` × its peak, Stage I ends.
* **Stage II** fuses the encoders and trains them jointly.

`cg-digits` is bundled (scikit-learn's 8×8 digits, no download): modality 1 is the gray digit,
modality 2 the same digit tinted with a color that matches the class 97% of the time in
train/val/probe but is **random in test**. Color is a shortcut; shape is what generalizes.

This is a deliberately **small** run (500 training images, at most 6 Stage I epochs, 4 Stage II
epochs, one seed) so the notebook executes in well under a minute on a CPU; the numbers are
illustrative, not the paper's. So that such a short run shows more than one or two probes, the synergy
threshold is lowered from the default `lambda_s=0.8` to `0.6`; everything else uses the defaults.
Naive joint training (`method="joint"`, fused model from scratch) with the same total epoch budget
runs beside it.
"""),
    code("""
%matplotlib inline
import json
import os
import tempfile
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets; progress is off

import numpy as np
import matplotlib.pyplot as plt
import multimodal_sched as ms

plt.rcParams.update({"figure.dpi": 80, "axes.grid": True, "grid.alpha": 0.3})
workdir = tempfile.TemporaryDirectory()      # run directories (checkpoints, events.jsonl); removed at the end

common = dict(dataset="cg-digits", dataset_options={"n_train": 500}, seed=0, k=8,
              progress=False, plots=False, num_threads=1)
pid_cfg = ms.RunConfig(method="pid", max_unimodal_epochs=6, probe_every=1, stage2_epochs=4,
                       tau_u=1.5, lambda_s=0.6, pid_method="exact",
                       out=os.path.join(workdir.name, "pid"), **common)
joint_cfg = ms.RunConfig(method="joint", joint_epochs=pid_cfg.max_unimodal_epochs + pid_cfg.stage2_epochs,
                         out=os.path.join(workdir.name, "joint"), **common)

pid_run = ms.run(pid_cfg)
joint_run = ms.run(joint_cfg)

def events(run):
    with open(os.path.join(run.run_dir, "events.jsonl")) as f:
        return [json.loads(line) for line in f]

pid_events, joint_events = events(pid_run), events(joint_run)
print(f"PID-guided : Stage I epochs per modality {pid_run.stage1_epochs}, test accuracy "
      f"{pid_run.test_accuracy:.3f}  ({pid_run.wall_time_s:.0f} s)")
print(f"naive joint: {joint_cfg.joint_epochs} joint epochs,             test accuracy "
      f"{joint_run.test_accuracy:.3f}  ({joint_run.wall_time_s:.0f} s)")
"""),
    md("""
## The controller's decisions

Each probe records the atoms (bits), the decision and its reason:
"""),
    code("""
for p in pid_run.probes:
    print(f"epoch {p['epoch']:2d}  R={p['R']:.3f} U1={p['U1']:.3f} U2={p['U2']:.3f} S={p['S']:.3f}  ->  {p['reason']}")
"""),
    code("""
probes = pid_run.probes
ep = np.array([p["epoch"] for p in probes])
fig, ax = plt.subplots(figsize=(9, 4))
for k, c in zip(["R", "U1", "U2", "S"], ["tab:blue", "tab:green", "tab:olive", "tab:red"]):
    ax.plot(ep, [p[k] for p in probes], "o-", color=c, label=k)
s_peak = np.maximum.accumulate([p["S"] for p in probes])
ax.plot(ep, pid_cfg.lambda_s * s_peak, ":", color="tab:red", lw=1, label=f"lambda_s × peak S")

# shade each Stage I epoch by the encoder(s) trained in it
stage1 = [e for e in pid_events if e["type"] == "epoch" and e["phase"] == "stage1"]
shade = {("m1",): ("tab:green", "trains modality 1 (gray)"), ("m2",): ("tab:olive", "trains modality 2 (color)"),
         ("m1", "m2"): ("0.6", "trains both")}
seen = set()
for e in stage1:
    mods = tuple(m for m in ("m1", "m2") if m in e)
    color, label = shade[mods]
    ax.axvspan(e["epoch"] - 1, e["epoch"], color=color, alpha=0.12,
               label=None if mods in seen else label)
    seen.add(mods)
for p in probes:
    d = p["decision"]
    if d["start_joint"]:
        ax.axvline(p["epoch"], color="k", ls="--", lw=1)
        ax.annotate("→ Stage II", (p["epoch"], ax.get_ylim()[1]), xytext=(3, -12),
                    textcoords="offset points", fontsize=9)
ax.set_xlabel("Stage I epoch (probe after it)"); ax.set_ylabel("bits")
ax.set_title("PID of the two encoders during Stage I, with the controller's decisions", fontsize=10)
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
fig.tight_layout()
"""),
    md("""
After one epoch of both encoders, the color encoder (modality 2) has learned the shortcut and holds
most of the unique information ($U_2 \\gg U_1$); the controller pauses it and trains the gray encoder
alone, so shape features develop before the two are fused. Stage I ends when synergy falls below
`lambda_s` × its peak (dotted line) or when the epoch cap `max_unimodal_epochs` is reached; the
printed reasons say which.

## Beside naive joint training

Validation accuracy per epoch (val has the color shortcut; test does not), and the test accuracy of
the checkpoint each run selected on val:
"""),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [2.2, 1]})
ax = axes[0]
n1 = len(stage1)
for m, c in (("m1", "tab:green"), ("m2", "tab:olive")):
    pts = [(e["epoch"], e[m]["val_acc"]) for e in stage1 if m in e]
    ax.plot(*zip(*pts), "o-", color=c, ms=4, label=f"PID-guided, Stage I head {m[1]}")
stage2 = [e for e in pid_events if e["type"] == "epoch" and e["phase"] == "stage2"]
ax.plot([n1 + e["epoch"] for e in stage2], [e["val_acc"] for e in stage2], "o-", color="tab:red", ms=4,
        label="PID-guided, Stage II fused")
joint = [e for e in joint_events if e["type"] == "epoch"]
ax.plot([e["epoch"] for e in joint], [e["val_acc"] for e in joint], "s--", color="k", ms=4,
        label="naive joint, fused")
ax.axvline(n1 + 0.5, color="k", ls=":", lw=1)
ax.set_xlabel("epoch"); ax.set_ylabel("val accuracy"); ax.legend(fontsize=8)
ax.set_title("validation accuracy (color shortcut present)", fontsize=10)

ax = axes[1]
names = ["PID-guided", "naive joint"]
acc = [pid_run.test_accuracy, joint_run.test_accuracy]
ax.bar(names, acc, color=["tab:red", "0.4"])
for i, a in enumerate(acc):
    ax.text(i, a + 0.01, f"{a:.3f}", ha="center")
ax.set_ylim(0, 1); ax.set_ylabel("test accuracy"); ax.set_title("test (random colors)", fontsize=10)
fig.tight_layout()
print("selected checkpoints:", {"pid": pid_run.selected, "joint": joint_run.selected})
"""),
    md("""
Val accuracy is high for any model that reads the color, so it says little about what the models
learned; the test split, where colors are random, is the real measure. `test_acc_head1` above is the
gray encoder's own head on test: the shape information is there, and the fused classifier uses less
of it when the color encoder dominates training. At this tiny scale (500 images, one seed) the
numbers move from seed to seed; `multimodal-sched run` (see `docs/multimodal_sched.md`) runs the
full-size comparison.
"""),
    code("""
workdir.cleanup()
"""),
]

# --------------------------------------------------------------------------- 04
NB04 = [
    md("""
# 4 · PID as a differentiable quantity (torch)

Give `fastpid.pid` a `torch.Tensor` and it runs on the torch backend: the atoms come back as tensors
on the input's device, attached to the autograd graph. For `method="exact"` the solve itself runs in
the certified Numba kernel for CPU tensors (as here; on CUDA tensors, by default, in its batched torch
port on the device, see `docs/torch.md`) and the gradients come from the **envelope theorem**: the atoms
depend on $P$ through the optimal value of the BROJA program, whose derivative is given by the
Lagrange multipliers of the two marginal constraints, so nothing is differentiated through solver
iterations. (`"analytic"` and `"fastpid"` are differentiable by autograd; `"cvx"` results are
detached.)
"""),
    code("""
%matplotlib inline
import warnings

import numpy as np
import matplotlib.pyplot as plt
import torch

import fastpid
from fastpid import distributions as D

plt.rcParams.update({"figure.dpi": 80})
torch.set_default_dtype(torch.float64)
"""),
    md("""
## The gradient of synergy with respect to the histogram

A noisy XOR gate, as a tensor that requires gradients:
"""),
    code("""
P = torch.tensor(D.noisy(D.xor(), 0.2), requires_grad=True)
r = fastpid.pid(P)
print(r)
r.S.backward()
G = P.grad.clone()

fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2))
lim = float(G.abs().max())
for y, ax in enumerate(axes):
    im = ax.imshow(G[:, :, y].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{G[i, j, y]:+.2f}\\n(p={P[i, j, y]:.3f})", ha="center", va="center", fontsize=9,
                    color="white" if abs(G[i, j, y]) > lim / 2 else "black")
    ax.set_xticks([0, 1]); ax.set_yticks([0, 1])
    ax.set_xlabel("x2"); ax.set_ylabel("x1"); ax.set_title(f"dS/dP[x1, x2, y={y}]", fontsize=10)
fig.colorbar(im, ax=axes, shrink=0.8, label="bits per unit mass")
"""),
    md("""
Moving mass onto the XOR table ($y = x_1 \\oplus x_2$) raises synergy; moving it onto the wrong
label lowers it, and much faster. `pid` normalizes its input, so the atoms do not change when $P$ is
rescaled and the gradient is orthogonal to $P$ itself. A central finite difference along a random
direction confirms the gradient:
"""),
    code("""
torch.manual_seed(0)
d = torch.randn(2, 2, 2)
h = 1e-5
with torch.no_grad():
    S_plus = fastpid.pid(P + h * d).S
    S_minus = fastpid.pid(P - h * d).S
print(f"finite difference  {(S_plus - S_minus).item() / (2 * h):+.6f}")
print(f"autograd  grad·d   {(G * d).sum().item():+.6f}")
print(f"grad·P (scale invariance) = {(G * P.detach()).sum().item():+.1e}")
"""),
    md("""
One caveat: where the optimal $q$ has **zero cells**, $S$ can have a kink. The noisy AND gate is such a
case (`exact` is an interior-point method, so its $q$ shows those cells as tiny positive values, about
$10^{-8}$ below): along the same direction the two one-sided derivatives differ, and the gradient returned is a
value between them, not a derivative that finite differences can confirm. `docs/torch.md` (section
"Boundary") states exactly which gradients are exact; check with finite differences before relying
on gradients at such points.
"""),
    code("""
P_and = D.noisy(D.and_(), 0.1)
Pt = torch.tensor(P_and, requires_grad=True)
fastpid.pid(Pt).S.backward()
s0, s_up, s_dn = (fastpid.pid(P_and + s * h * d.numpy()).S for s in (0, 1, -1))
print(f"noisy AND: min q* = {fastpid.pid(P_and).q.min():.1e}")
print(f"one-sided derivatives along d: {(s_up - s0) / h:+.3f} (forward), {(s0 - s_dn) / h:+.3f} (backward);"
      f" autograd: {(Pt.grad * d).sum().item():+.3f}")
"""),
    md("""
## Optimizing a discretization to raise synergy

A differentiable PID lets synergy be a training signal. Here $X_1, X_2 \\sim U(-1, 1)$ are continuous and
$Y = [X_1 > 0.3] \\oplus [X_2 > -0.2]$: the label is a XOR of two thresholded features, but we do not
know the thresholds. We **learn** the thresholds $t_1, t_2$ of a soft two-bin discretization
$a_i = \\sigma((x_i - t_i)/T)$, build the joint histogram from the soft memberships (differentiable in
$t$), and run Adam on $-S$.
"""),
    code("""
torch.manual_seed(0)
n = 1000
x1, x2 = torch.rand(n) * 2 - 1, torch.rand(n) * 2 - 1
y = ((x1 > 0.3) ^ (x2 > -0.2)).long()
Y = torch.nn.functional.one_hot(y, 2).to(torch.float64)

def soft_histogram(t, temp=0.05):
    a1, a2 = torch.sigmoid((x1 - t[0]) / temp), torch.sigmoid((x2 - t[1]) / temp)
    A1, A2 = torch.stack([1 - a1, a1], 1), torch.stack([1 - a2, a2], 1)
    return torch.einsum("ni,nj,nk->ijk", A1, A2, Y) / n     # P[x1 bin, x2 bin, y]

t = torch.tensor([-0.6, 0.6], requires_grad=True)
opt = torch.optim.Adam([t], lr=0.05)
hist_S, hist_t = [], []
for step in range(60):
    r = fastpid.pid(soft_histogram(t))
    opt.zero_grad()
    (-r.S).backward()
    opt.step()
    hist_S.append(r.S.item()); hist_t.append(t.detach().clone().numpy())
hist_t = np.array(hist_t)
final = fastpid.pid(soft_histogram(t.detach()))
print(f"learned thresholds t1={t[0].item():+.3f}, t2={t[1].item():+.3f}   (true: +0.300, -0.200)")
print(f"synergy: {hist_S[0]:.3f} -> {final.S.item():.3f} bits;  R={final.R.item():.3f} U1={final.U1.item():.3f} U2={final.U2.item():.3f}")
"""),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(hist_S, color="tab:red")
axes[0].set(xlabel="Adam step", ylabel="S (bits)", title="synergy of the discretization")
axes[1].plot(hist_t[:, 0], label="t1 (learned)", color="tab:green")
axes[1].plot(hist_t[:, 1], label="t2 (learned)", color="tab:olive")
axes[1].axhline(0.3, color="tab:green", ls=":", label="t1 true")
axes[1].axhline(-0.2, color="tab:olive", ls=":", label="t2 true")
axes[1].set(xlabel="Adam step", ylabel="threshold", title="thresholds")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()
"""),
    md("""
Synergy is maximal when the bins line up with the XOR's own thresholds: the optimizer finds them from
a start where the discretization carries almost no information. The same pattern — a histogram
built differentiably from embeddings or soft cluster assignments, then `fastpid.pid` — lets PID atoms
enter a loss in a training loop.
"""),
]


NOTEBOOKS = {
    "01": ("01_pid_basics.ipynb", NB01),
    "02": ("02_solvers_compared.ipynb", NB02),
    "03": ("03_scheduling_cg_digits.ipynb", NB03),
    "04": ("04_gradients.ipynb", NB04),
}


def build(key, execute=True, timeout=CELL_TIMEOUT):
    fname, spec = NOTEBOOKS[key]
    nb = new_notebook(cells=_cells(spec))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = os.path.join(HERE, fname)
    if execute:
        from nbclient import NotebookClient

        t0 = time.time()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": HERE}}).execute()
        print(f"{fname}: executed in {time.time() - t0:.1f} s")
    nbformat.write(nb, path)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", nargs="*", help="notebook numbers (default: all)")
    ap.add_argument("--no-execute", action="store_true")
    args = ap.parse_args(argv)
    for key in args.which or list(NOTEBOOKS):
        build(key, execute=not args.no_execute)


if __name__ == "__main__":
    sys.exit(main())
