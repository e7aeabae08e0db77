"""The four benchmarks: gates (Table VI), gaussian (Table VII), ablation
(Tables IX, XI, XII) and scaling.  Each returns flat result rows (dicts with
the keys of :data:`fastpid_bench.report.COLUMNS`) and the problems it used."""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from . import problems as pb
from .runner import ATOMS, REFERENCE_ORDER, Measurement, Referee, mae, measure, warm_up

__all__ = ["Config", "run_gates", "run_gaussian", "run_ablation", "run_scaling", "ABLATIONS"]

ABLATIONS = ("init", "iters", "sinkhorn")
NO_STOP_TOL = 1e-300  # FastPID tol that never fires: runs exactly max_iter steps


@dataclass
class Config:
    """Everything a run depends on (recorded in results.json)."""

    methods: list
    backend: str | None = None
    repeat: int = 1
    seed: int = 0
    quick: bool = False
    samples: int = 500_000
    gates: list = field(default_factory=lambda: list(pb.GATES))
    dx: list = field(default_factory=lambda: [8, 16, 32])
    dy: int = 8
    coeffs: tuple = pb.DEFAULT_COEFFS
    noise: float = 0.5
    ablations: list = field(default_factory=lambda: list(ABLATIONS))
    ablation_dx: int = 16  # Table X: 16 input bins, 8 target bins, 500,000 samples
    ablation_dy: int = 8
    init_values: list = field(default_factory=lambda: ["analytic", "uniform", "gaussian"])
    iters_values: list = field(default_factory=lambda: [10, 50, 200, 500, 2000])
    sinkhorn_values: list = field(default_factory=lambda: [1, 5, 10, 20, 40])
    sizes: list = field(default_factory=lambda: [4, 8, 16, 32, 64])
    ny: int = 8
    batch: int = 1000
    batch_shape: tuple = (20, 20, 6)
    #: the scheduler's shapes with many labels (a probe of k x k clusters and ny classes)
    label_shapes: list = field(default_factory=lambda: [(20, 20, 28), (20, 20, 101), (2, 2, 1000), (2, 2, 3000)])
    serial_batch: int = 20  # cap on the batch for methods that loop in Python (cvx)
    max_time: float = 60.0
    method_extra: dict = field(default_factory=dict)  # method -> extra pid options
    reference: tuple = REFERENCE_ORDER  # MAE reference candidates, most accurate first

    @classmethod
    def quick_defaults(cls, methods) -> "Config":
        return cls(
            methods=methods, quick=True, samples=20_000, dx=[4, 8], dy=4,
            ablation_dx=8, ablation_dy=4, iters_values=[10, 50, 200], sinkhorn_values=[1, 10, 20],
            sizes=[2, 4, 8], ny=4, batch=20, batch_shape=(8, 8, 4), serial_batch=2, max_time=5.0,
            label_shapes=[(4, 4, 32), (2, 2, 256)],
            method_extra={"cvx-scs": {"max_iter": 2000}},
        )


def _solve(cfg: Config, P, method, extra=None, repeat=None) -> Measurement:
    warm_up(method, cfg.backend, cfg.seed)
    opts = dict(cfg.method_extra.get(method, {}))
    opts.update(extra or {})
    return measure(P, method, backend=cfg.backend, repeat=repeat or cfg.repeat, seed=cfg.seed, extra=opts)


def _row(bench, problem: pb.Problem, m: Measurement, *, backend, variant="", ref_label="",
         ref: Measurement | None = None, **more) -> dict:
    n1, n2, ny = problem.shape
    row = {
        "bench": bench, "problem": problem.name, "variant": variant, "method": m.method,
        "backend": backend or "default", "n1": n1, "n2": n2, "ny": ny, "size": problem.size,
        "batch": problem.batch,
    }
    for k in ATOMS:
        v = m.atoms.get(k, math.nan)
        row[k] = float(np.mean(v)) if np.size(v) else math.nan
    row["I"] = m.I if np.ndim(m.I) == 0 else float(np.mean(m.I))
    truth = problem.truth or {}
    for k in ATOMS:
        row[f"gt_{k}"] = truth.get(k, math.nan)
    row["mae_gt"] = mae(m.atoms, truth) if truth and m.ok else math.nan
    row["mae"] = mae(m.atoms, ref.atoms) if (ref is not None and m.ok) else math.nan
    row["reference"] = ref_label
    row["time_s"] = m.time
    row["time_min_s"] = m.time_min
    row["repeat"] = len(m.times)
    row["throughput_per_s"] = problem.batch / m.time if m.times and m.time > 0 else math.nan
    row["speedup"] = (ref.time / m.time) if (ref is not None and ref.times and m.times and m.time > 0) else math.nan
    row["iterations"] = m.iterations
    row["violation"] = m.violation
    row["gap"] = m.gap
    row["converged"] = m.converged
    row["status"] = m.status
    row["warnings"] = m.n_warnings
    row["error"] = m.error or ""
    row["exponent"] = math.nan
    row.update(more)
    return row


def _referee(cfg, problem) -> Referee:
    return Referee(problem.counts, backend=cfg.backend, seed=cfg.seed, order=cfg.reference,
                   extra=cfg.method_extra)


def _score_problem(cfg, bench, problem, tick, variant="") -> list:
    """Every requested method on one problem, each scored against its reference."""
    referee = _referee(cfg, problem)
    runs = []
    for method in cfg.methods:
        m = _solve(cfg, problem.counts, method)
        referee.add(m)
        runs.append(m)
        tick()
    rows = []
    for m in runs:
        label, ref = referee.reference(m.method)
        rows.append(_row(bench, problem, m, backend=cfg.backend, variant=variant, ref_label=label, ref=ref))
    return rows


def run_gates(cfg: Config, progress=nullcontext) -> tuple[list, list]:
    rows, probs = [], []
    with progress(len(cfg.gates) * len(cfg.methods), "gates") as tick:
        for gate in cfg.gates:
            problem = pb.gate_problem(gate, samples=cfg.samples, seed=cfg.seed)
            probs.append(problem)
            rows += _score_problem(cfg, "gates", problem, tick)
    return rows, probs


def run_gaussian(cfg: Config, progress=nullcontext) -> tuple[list, list]:
    rows, probs = [], []
    with progress(len(cfg.dx) * len(cfg.methods), "gaussian") as tick:
        for dx in cfg.dx:
            problem = pb.gaussian_problem(dx, cfg.dy, samples=cfg.samples, seed=cfg.seed,
                                          coeffs=cfg.coeffs, noise=cfg.noise)
            probs.append(problem)
            rows += _score_problem(cfg, "gaussian", problem, tick)
    return rows, probs


def run_ablation(cfg: Config, which=None, progress=nullcontext) -> tuple[list, list]:
    """FastPID ablations on the Gaussian task of Table X; always scores method 'fastpid'."""
    which = list(which or cfg.ablations)
    problem = pb.gaussian_problem(cfg.ablation_dx, cfg.ablation_dy, samples=cfg.samples, seed=cfg.seed,
                                  coeffs=cfg.coeffs, noise=cfg.noise)
    sweeps = {
        "init": [("init", cfg.init_values, {})],
        # the paper's stopping test, and the same budgets with the test disabled (tol ~ 0) so
        # that every row really runs max_iter Adam steps
        "iters": [("max_iter", cfg.iters_values, {}), ("max_iter", cfg.iters_values, {"tol": NO_STOP_TOL})],
        "sinkhorn": [("sinkhorn_iters", cfg.sinkhorn_values, {})],
    }
    total = sum(len(v) for w in which for _, v, _ in sweeps[w]) + 1
    rows = []
    with progress(total, "ablation") as tick:
        referee = _referee(cfg, problem)
        label, ref = referee.reference("fastpid")
        tick()
        if ref is not None:
            rows.append(_row("ablation", problem, ref, backend=cfg.backend, variant="reference",
                             ref_label=label, ref=None))
        for w in which:
            for opt, values, fixed in sweeps[w]:
                tag = f"{w}(no early stop)" if fixed else w
                for v in values:
                    m = _solve(cfg, problem.counts, "fastpid", extra={opt: v, **fixed})
                    rows.append(_row("ablation", problem, m, backend=cfg.backend, variant=f"{tag}:{opt}={v}",
                                     ref_label=label, ref=ref))
                    tick()
    return rows, [problem]


def fit_exponent(sizes, times, last: int = 3) -> float:
    """Slope of log(time) against log(n1*n2*ny) over the ``last`` largest sizes measured."""
    pts = [(s, t) for s, t in zip(sizes, times) if s > 0 and t > 0 and math.isfinite(t)]
    pts = sorted(pts)[-last:]
    if len(pts) < 2 or len({s for s, _ in pts}) < 2:
        return math.nan
    x = np.log([s for s, _ in pts])
    y = np.log([t for _, t in pts])
    return float(np.polyfit(x, y, 1)[0])


def run_scaling(cfg: Config, progress=nullcontext) -> tuple[list, list]:
    """Single-solve time against size (n x n x ny) and batched throughput, per method."""
    rows, probs = [], []
    size_probs = [pb.random_problem(n, n, cfg.ny, seed=cfg.seed) for n in cfg.sizes]
    # smallest first, so that the skip rule (a method slower than max_time stops) skips only larger ones
    label_probs = [pb.random_problem(a, b, c, seed=cfg.seed)
                   for a, b, c in sorted(cfg.label_shapes, key=lambda sh: (sh[0] * sh[1] * sh[2], sh))]
    probs += size_probs + label_probs
    n1, n2, ny = cfg.batch_shape
    total = len(cfg.methods) * (len(size_probs) + len(label_probs) + 1)
    with progress(total, "scaling") as tick:
        for method in cfg.methods:
            mrows = []
            too_slow = False
            for problem in size_probs:
                if too_slow:
                    mrows.append(_skipped(cfg, problem, method, f"skipped: a smaller size took over {cfg.max_time:g} s"))
                    tick()
                    continue
                m = _solve(cfg, problem.counts, method)
                mrows.append(_row("scaling", problem, m, backend=cfg.backend, variant="single"))
                too_slow = not (m.time <= cfg.max_time)
                tick()
            exp = fit_exponent([r["size"] for r in mrows], [r["time_s"] for r in mrows])
            for r in mrows:
                r["exponent"] = exp
            rows += mrows
            too_slow = False
            for problem in label_probs:   # many labels: variant "labels", same skip rule
                if too_slow:
                    rows.append(_row("scaling", problem, _skipped_m(method, cfg), backend=cfg.backend,
                                     variant="labels"))
                    tick()
                    continue
                m = _solve(cfg, problem.counts, method)
                rows.append(_row("scaling", problem, m, backend=cfg.backend, variant="labels"))
                too_slow = not (m.time <= cfg.max_time)
                tick()
            serial = METHOD_IS_SERIAL.get(method, False) or (method == "fastpid" and cfg.backend in (None, "numpy"))
            B = min(cfg.batch, cfg.serial_batch) if serial else cfg.batch
            bprob = pb.random_problem(n1, n2, ny, seed=cfg.seed, batch=B, samples=2_000 if cfg.quick else 20_000)
            probs.append(bprob)
            m = _solve(cfg, bprob.counts, method, repeat=1)
            rows.append(_row("scaling", bprob, m, backend=cfg.backend, variant="batched"))
            tick()
    return rows, probs


#: methods whose batch is a Python loop of single solves (batch capped by serial_batch);
#: FastPID on the NumPy backend loops too
METHOD_IS_SERIAL = {"cvx-scs": True, "cvx-clarabel": True}


def _skipped(cfg, problem, method, why) -> dict:
    m = Measurement(method=method, options={}, status="skipped", error=why)
    return _row("scaling", problem, m, backend=cfg.backend, variant="single")


def _skipped_m(method, cfg) -> Measurement:
    return Measurement(method=method, options={}, status="skipped",
                       error=f"skipped: a smaller label set took over {cfg.max_time:g} s")
