"""Console entry point ``multimodal-sched`` (also ``python -m multimodal_sched``).

    multimodal-sched run --config FILE | --dataset cg-digits [--preset paper|crema-sweep] [--seed N] [--out RUN_DIR]
                         [--method pid|mi|joint|unimodal|schedule|sequential|udi|concat|uniform|aux0.6|
                                   ogm-ge|pmr|mmpareto|gblending|mla|agm]
                         [--stage2 STRATEGY] [--stage2-options JSON] [--method-options JSON]
                         [--resume RUN_DIR] [--overwrite]
    multimodal-sched compare --datasets cg-digits [--methods ...] --seeds 0 1 2 --out DIR [--val shifted]
    multimodal-sched grid --dataset cg-digits --seed 0 --out DIR [--epochs1 0,1,2,5,20 --epochs2 0,1,5,10,30]
    multimodal-sched prepare cremad|ave|ucf101|cgmnist --raw DIR --out DIR [--force]
    torchrun --nproc-per-node N -m multimodal_sched run ...     (DistributedDataParallel)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .config import METHODS, RunConfig, load_config

__all__ = ["main"]


#: run flags that set a RunConfig field of the same name
_RUN_FIELDS = ("dataset", "data_path", "seed", "out", "method", "stage2", "stage2_options", "method_options")


def _json_dict(text: str) -> dict:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg}): {text!r}")
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object {{...}}, got {text!r}")
    return d


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="multimodal-sched", description="PID-guided two-stage multimodal training")
    p.add_argument("-v", "--verbose", action="store_true", help="log every probe and decision")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="one training run")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--config", help="JSON or YAML config file")
    src.add_argument("--dataset", help="cg-digits, synthetic (built in) or cremad, ave, ucf101, cgmnist "
                                       "(files under --data-path; docs/datasets.md)")
    r.add_argument("--preset", help="named settings applied over the config: paper (tau_u 5, lambda_s 0.95, "
                                    "f_p 5, Algorithm 1's rules, 64-d projection) or crema-sweep (the defaults)")
    r.add_argument("--data-path", dest="data_path", help="root folder of a file-based dataset")
    r.add_argument("--seed", type=int)
    r.add_argument("--out", help="run directory (default runs/<dataset>-<method>-s<seed>-<time>)")
    r.add_argument("--method", choices=METHODS)
    r.add_argument("--stage2", help="Stage II strategy after a Stage I (pid, mi, schedule, sequential, udi): "
                                    "aux, aux0.6, concat, uniform, ogm-ge, pmr, mmpareto, gblending, mla, agm")
    r.add_argument("--stage2-options", dest="stage2_options", type=_json_dict, metavar="JSON",
                   help='the strategy\'s hyperparameters, e.g. \'{"alpha": 0.1}\'')
    r.add_argument("--method-options", dest="method_options", type=_json_dict, metavar="JSON",
                   help='options of method sequential / udi, e.g. \'{"patience": 2}\'')
    r.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    r.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    r.add_argument("--no-progress", action="store_true", help="hide progress bars")
    c = sub.add_parser("compare", help="the comparison table (methods x seeds x datasets, two protocols)")
    c.add_argument("--datasets", nargs="+", default=["cg-digits"])
    c.add_argument("--methods", nargs="+", default=None,
                   help="unimodal1 unimodal2 concat uniform aux0.6 mi pid schedule (default) or any --method name")
    c.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    c.add_argument("--out", default="runs/compare", help="directory for the runs, results.csv/json, table.md")
    c.add_argument("--val", choices=("iid", "shifted"), default=None,
                   help="cg-digits: select checkpoints on the iid val split (default) or the shifted one")
    c.add_argument("--schedule-epochs1", dest="sched1", default="0,5,20", help="fixed schedules: encoder-1 epochs")
    c.add_argument("--schedule-epochs2", dest="sched2", default="0,5,20", help="fixed schedules: encoder-2 epochs")
    c.add_argument("--overrides", type=_json_dict, metavar="JSON", help="RunConfig fields of every run")
    c.add_argument("--jobs", type=int, default=1, help="worker processes (one torch thread each)")
    g = sub.add_parser("grid", help="PID at each Stage II start point vs the fused accuracy reached from it")
    g.add_argument("--dataset", default="cg-digits")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default="runs/grid")
    g.add_argument("--epochs1", default="0,1,2,5,20")
    g.add_argument("--epochs2", default="0,1,5,10,30")
    g.add_argument("--val", choices=("iid", "shifted"), default=None)
    g.add_argument("--k", type=int, default=None, help="probe clusters per modality (default: from the sample size)")
    g.add_argument("--n-boot", dest="n_boot", type=int, default=200)
    g.add_argument("--overrides", type=_json_dict, metavar="JSON", help="RunConfig fields of every run")
    from .data.disk.prepare import add_arguments as _prepare_arguments
    _prepare_arguments(sub.add_parser("prepare", help="raw dataset download -> the caches the loaders read"))
    return p


def main(argv=None) -> int:
    from . import require_extra
    try:
        require_extra()
    except ImportError as e:
        sys.stderr.write(f"multimodal-sched: {e}\n")
        return 1
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("multimodal_sched")
    if args.command == "prepare":
        from .data.disk.prepare import run_from_args
        logging.getLogger("multimodal_sched.data.disk").setLevel(logging.INFO)
        return run_from_args(args, sys.stdout, json)
    if args.command in ("compare", "grid"):
        from .experiments import compare, grid
        from .experiments._common import parse_epochs
        try:
            if args.command == "compare":
                kw = {} if args.methods is None else {"methods": args.methods}
                res = compare(datasets=args.datasets, seeds=args.seeds, out=args.out, val=args.val,
                              schedule_grid=(parse_epochs(args.sched1, "--schedule-epochs1"),
                                             parse_epochs(args.sched2, "--schedule-epochs2")),
                              overrides=args.overrides, jobs=args.jobs, **kw)
                sys.stdout.write(res["table"] + "\n")
            else:
                res = grid(args.dataset, args.seed, args.out, epochs1=args.epochs1, epochs2=args.epochs2,
                           val=args.val, k=args.k, n_boot=args.n_boot, overrides=args.overrides)
                sys.stdout.write(json.dumps(res["spearman"], indent=2) + "\n")
        except (ValueError, TypeError) as e:
            log.error("%s", e)
            return 2
        return 0

    from .runner import run
    try:
        if args.resume:
            overrides = [n for n in ("config", "preset", *_RUN_FIELDS) if getattr(args, n) is not None]
            overrides += ["overwrite"] if args.overwrite else []
            if overrides:
                raise ValueError(f"--resume takes its settings from RUN_DIR/config.json; drop {['--' + n for n in overrides]}")
            result = run(None, resume=args.resume)
        else:
            cfg = load_config(args.config) if args.config else RunConfig()
            if args.preset is not None:
                from .config import PRESETS
                if args.preset not in PRESETS:
                    raise ValueError(f"unknown preset {args.preset!r}; choose one of {sorted(PRESETS)}")
                cfg = cfg.replace(**PRESETS[args.preset])
            changes = {n: getattr(args, n) for n in _RUN_FIELDS if getattr(args, n) is not None}
            if args.no_progress:
                changes["progress"] = False
            cfg = cfg.replace(**changes)
            result = run(cfg, overwrite=args.overwrite)
    except (ValueError, TypeError) as e:
        log.error("%s", e)
        return 2
    summary = {k: v for k, v in result.to_dict().items() if k != "probes"}
    if os.environ.get("RANK", "0") == "0":   # under torchrun, rank 0 reports
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
