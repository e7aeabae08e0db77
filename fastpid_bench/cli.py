"""Console entry point ``fastpid-bench`` (also ``python -m fastpid_bench``).

    fastpid-bench [common options] {gates,gaussian,ablation,scaling,all} [options]

Common options may also follow the subcommand.  Bad options give a one-line
error on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import tempfile
import time
import warnings

__all__ = ["main", "build_parser"]

PROG = "fastpid-bench"
COMMANDS = ("gates", "gaussian", "ablation", "scaling", "all")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (no usage block) and exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        sys.stderr.write(f"{PROG}: error: {message}\n")
        raise SystemExit(2)


class _UsageError(Exception):
    pass


# ----------------------------------------------------------------------------- option types
def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _int_list(text):
    parts = [p for p in str(text).replace(" ", ",").split(",") if p]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of positive integers, got {text!r}")
    return [_positive_int(p) for p in parts]


def _shape_list(text):
    shapes = []
    for part in (p for p in str(text).replace(" ", ",").split(",") if p):
        dims = part.lower().split("x")
        if len(dims) != 3:
            raise argparse.ArgumentTypeError(f"expected shapes N1xN2xNY separated by commas, got {part!r}")
        shapes.append(tuple(_positive_int(d) for d in dims))
    if not shapes:
        raise argparse.ArgumentTypeError(f"expected shapes N1xN2xNY separated by commas, got {text!r}")
    return shapes


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return v


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


def _floats4(text):
    try:
        v = tuple(float(p) for p in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected four numbers c1,c2,u1,u2, got {text!r}") from None
    if len(v) != 4:
        raise argparse.ArgumentTypeError(f"expected four numbers c1,c2,u1,u2, got {len(v)} in {text!r}")
    return v


def _seed(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {v}")
    return v


def _str_list(text):
    return [p.strip() for p in str(text).split(",") if p.strip()]


# ----------------------------------------------------------------------------- parser
def _add_common(p, suppress: bool):
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    g = p.add_argument_group("common options")
    g.add_argument("--methods", type=_str_list, default=d(None), metavar="LIST",
                   help="comma-separated methods: exact, fastpid, analytic, cvx-scs, cvx-clarabel (default: all)")
    g.add_argument("--backend", default=d(None), help="array backend passed to fastpid.pid (numpy, torch, ...)")
    g.add_argument("--repeat", type=_positive_int, default=d(1), help="timed solves per measurement (median reported)")
    g.add_argument("--seed", type=_seed, default=d(0), help="seed of every sample and solver (default 0)")
    g.add_argument("--quick", action="store_true", default=d(False), help="small sizes: seconds, for CI")
    g.add_argument("--out", default=d(None), metavar="DIR", help="write results.csv, results.json and PNG plots here")
    g.add_argument("--samples", type=_positive_int, default=d(None),
                   help="samples per gate / Gaussian task (default 500000; --quick 20000)")
    g.add_argument("--reference", type=_str_list, default=d(None), metavar="LIST",
                   help="MAE reference candidates, most accurate first (default exact,cvx-clarabel,cvx-scs); "
                        "the first accurate one other than the method scored is used")
    g.add_argument("--max-time", type=_positive_float, default=d(None), dest="max_time",
                   help="scaling: stop growing a method's size after a solve slower than this (s)")
    g.add_argument("--no-plots", action="store_true", default=d(False), dest="no_plots", help="skip PNG plots")
    g.add_argument("--no-progress", action="store_true", default=d(False), dest="no_progress",
                   help="no progress bar")


def _add_gates(p):
    p.add_argument("--gates", type=_str_list, default=argparse.SUPPRESS, metavar="LIST",
                   help="gates to run (default: xor,and,or,rdn,unq,copy)")


def _add_gaussian(p):
    p.add_argument("--dx", type=_int_list, default=argparse.SUPPRESS, metavar="LIST",
                   help="input bins per source (default 8,16,32; --quick 4,8)")
    p.add_argument("--dy", type=_positive_int, default=argparse.SUPPRESS, help="label bins (default 8; --quick 4)")
    p.add_argument("--coeffs", type=_floats4, default=argparse.SUPPRESS, metavar="C1,C2,U1,U2",
                   help="Y = c1 X1 + c2 X2 + u1 X1^2 + u2 X2^2 + noise (default 1,0.5,0.4,0.2)")
    p.add_argument("--noise", type=_nonneg_float, default=argparse.SUPPRESS, help="noise std (default 0.5)")


def _add_scaling(p):
    p.add_argument("--sizes", type=_int_list, default=argparse.SUPPRESS, metavar="LIST",
                   help="n for n x n x ny problems (default 4,8,16,32,64; --quick 2,4,8)")
    p.add_argument("--ny", type=_positive_int, default=argparse.SUPPRESS, help="label bins (default 8; --quick 4)")
    p.add_argument("--batch", type=_positive_int, default=argparse.SUPPRESS,
                   help="histograms in the batched run (default 1000; --quick 20)")
    p.add_argument("--batch-shape", type=_int_list, default=argparse.SUPPRESS, dest="batch_shape",
                   metavar="N1,N2,NY", help="shape of each batched histogram (default 20,20,6; --quick 8,8,4)")
    p.add_argument("--label-shapes", type=_shape_list, default=argparse.SUPPRESS, dest="label_shapes",
                   metavar="N1xN2xNY,...", help="many-label shapes solved once each, smallest first (default "
                   "20x20x28,20x20x101,2x2x1000,2x2x3000; --quick 4x4x32,2x2x256)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Every fastpid solver side by side; reproduces the paper's "
                     "solver tables (VI, VII, IX, XI, XII) and measures scaling.")
    _add_common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    sp = {}
    sp["gates"] = sub.add_parser("gates", help="Table VI: XOR, AND, OR, RDN, UNQ, COPY from samples")
    sp["gaussian"] = sub.add_parser("gaussian", help="Table VII: discretized Gaussian task, time and MAE")
    sp["ablation"] = sub.add_parser("ablation", help="Tables IX, XI, XII: FastPID init / iters / sinkhorn")
    sp["ablation"].add_argument("which", nargs="*", metavar="WHICH",
                                help="any of init, iters, sinkhorn (default: all three)")
    sp["scaling"] = sub.add_parser("scaling", help="time vs size per method, batched throughput, growth exponent")
    sp["all"] = sub.add_parser("all", help="gates, gaussian, ablation and scaling")
    for name, p in sp.items():
        _add_common(p, suppress=True)
        if name in ("gates", "all"):
            _add_gates(p)
        if name in ("gaussian", "ablation", "all"):
            _add_gaussian(p)
        if name in ("scaling", "all"):
            _add_scaling(p)
    return parser


# ----------------------------------------------------------------------------- checks
def _check_out(path):
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise _UsageError(f"--out {path!r} is not a writable directory ({exc.strerror or exc})") from None


def _config(args):
    from . import problems as pb
    from .runner import METHODS
    from .suites import Config

    methods = args.methods if args.methods is not None else list(METHODS)
    if not methods:
        raise _UsageError("--methods is empty; choose from " + ", ".join(METHODS))
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise _UsageError(f"unknown method {bad[0]!r} in --methods; choose from {', '.join(METHODS)}")
    methods = list(dict.fromkeys(methods))
    if args.backend is not None:
        import fastpid

        names = fastpid.backend_names()
        if args.backend not in names:
            raise _UsageError(f"unknown or unavailable --backend {args.backend!r}; available: {', '.join(names)}")
    cfg = Config.quick_defaults(methods) if args.quick else Config(methods=methods)
    cfg.backend = args.backend
    if args.reference is not None:
        from .runner import REFERENCE_ORDER

        bad = [m for m in args.reference if m not in REFERENCE_ORDER]
        if bad or not args.reference:
            raise _UsageError(f"unknown reference {bad[0] if bad else ''!r} in --reference; "
                              f"choose from {', '.join(REFERENCE_ORDER)}")
        cfg.reference = tuple(dict.fromkeys(args.reference))
    cfg.repeat = args.repeat
    cfg.seed = args.seed
    if args.samples is not None:
        cfg.samples = args.samples
    if args.max_time is not None:
        cfg.max_time = args.max_time
    if getattr(args, "gates", None) is not None:
        bad = [g for g in args.gates if g not in pb.GATES]
        if bad or not args.gates:
            raise _UsageError(f"unknown gate {bad[0] if bad else ''!r} in --gates; choose from {', '.join(pb.GATES)}")
        cfg.gates = list(dict.fromkeys(args.gates))
    for opt in ("dx", "dy", "coeffs", "noise", "sizes", "ny", "batch", "label_shapes"):
        if hasattr(args, opt):
            setattr(cfg, opt, getattr(args, opt))
    if hasattr(args, "dx"):
        cfg.ablation_dx = args.dx[0]
    if hasattr(args, "dy"):
        cfg.ablation_dy = args.dy
    if hasattr(args, "batch_shape"):
        if len(args.batch_shape) != 3:
            raise _UsageError(f"--batch-shape needs three positive integers N1,N2,NY, got {len(args.batch_shape)}")
        cfg.batch_shape = tuple(args.batch_shape)
    if args.command == "ablation" and args.which:
        from .suites import ABLATIONS

        bad = [w for w in args.which if w not in ABLATIONS]
        if bad:
            raise _UsageError(f"unknown ablation {bad[0]!r}; choose from {', '.join(ABLATIONS)}")
        cfg.ablations = list(dict.fromkeys(args.which))
    return cfg


# ----------------------------------------------------------------------------- main
def _have_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def run(cfg, command, *, out=None, plots=True, progress=True, argv=()):
    from rich.console import Console

    from . import report, suites
    from .runner import METHODS, REFERENCE_POLICY, warm_up_times

    t0 = time.perf_counter()
    started = report.now_utc()
    machine_at_start = report.machine_info()
    prog = report.progress_factory(progress and sys.stderr.isatty())
    rows, problems = [], []
    steps = {
        "gates": lambda: suites.run_gates(cfg, prog),
        "gaussian": lambda: suites.run_gaussian(cfg, prog),
        "ablation": lambda: suites.run_ablation(cfg, cfg.ablations, prog),
        "scaling": lambda: suites.run_scaling(cfg, prog),
    }
    for name in (list(steps) if command == "all" else [command]):
        r, p = steps[name]()
        rows += r
        problems += [(name, x) for x in p]
    console = Console() if sys.stdout.isatty() else Console(width=160)
    report.print_tables(rows, console)
    if out is not None:
        files = ["results.csv", "results.json"]
        report.write_csv(rows, os.path.join(out, "results.csv"))
        if plots and not _have_matplotlib():
            console.print("plots skipped: matplotlib is not installed (pip install 'fastpid[bench]' adds them)", markup=False)
            plots = False
        pngs = report.write_plots(rows, out) if plots else []
        files += pngs
        meta = {
            "command_line": " ".join([PROG] + [shlex.quote(a) for a in argv]),
            "argv": list(argv),
            "command": command,
            "seed": cfg.seed,
            "started_utc": started,
            "finished_utc": report.now_utc(),
            "duration_s": round(time.perf_counter() - t0, 3),
            "machine": machine_at_start,
            "load_average_at_end": report.machine_info()["load_average_1_5_15min"],
            "config": dataclasses.asdict(cfg),
            "method_options": {m: {"pid_method": METHODS[m][0], **METHODS[m][1], **cfg.method_extra.get(m, {})}
                               for m in cfg.methods},
            "reference_policy": REFERENCE_POLICY,
            "references_used": sorted({r["reference"] for r in rows if r.get("reference")}),
            "timing": "median wall time of --repeat solves via fastpid.pid; JIT warm-up excluded "
                      "(warm-up seconds in jit_warmup_s)",
            "jit_warmup_s": warm_up_times(),
            "files": files,
        }
        report.write_json(os.path.join(out, "results.json"), meta=meta, rows=rows, problems=problems)
        console.print(f"wrote {', '.join(files)} to {out}")
    return rows


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        cfg = _config(args)
        if args.out is not None:
            _check_out(args.out)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already reported)
        return int(exc.code or 0)
    except _UsageError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 2
    with warnings.catch_warnings():
        try:  # the exact kernel's "cannot cache" notes are not results
            from numba.core.errors import NumbaWarning

            warnings.simplefilter("ignore", NumbaWarning)
        except ImportError:  # pragma: no cover
            pass
        try:
            run(cfg, args.command, out=args.out, plots=not args.no_plots, progress=not args.no_progress, argv=argv)
        except KeyboardInterrupt:
            sys.stderr.write(f"{PROG}: interrupted\n")
            return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
