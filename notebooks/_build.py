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
sample grows. Histograms of the same shape stack into one batch. With few samples the plug-in
estimate **overestimates** synergy (and mutual information in general): sampling noise looks like
structure.
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


NOTEBOOKS = {
    "01": ("01_pid_basics.ipynb", NB01),
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
