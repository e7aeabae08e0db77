"""One controller run, probe by probe: PID atoms with bootstrap intervals, the rule that fired, the plot.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/controller_trace.py \
        --run-dir /work/runs/compare/cg-digits/seed0/pid --png docs/img/controller_trace.png

The run is ``multimodal_sched compare``'s ``pid`` run of cg-digits (same config: the reduced epochs
of README's comparison table, ``--overrides`` below); an existing finished run with that config in
``--run-dir`` is reused, otherwise it is trained (about a minute on one core).  Prints one line per
probe (estimate [95% interval] of every atom, the decision and the rule behind it), the
``fallback`` check, the Stage I epochs and the test accuracy of the val-selected checkpoint, and
writes the plot (PID atoms with error bars over Stage I epochs, decisions marked).
"""
from __future__ import annotations

import argparse
import json
import os

DEFAULT_OVERRIDES = {"unimodal_epochs": 20, "joint_epochs": 20, "max_unimodal_epochs": 20, "stage2_epochs": 10}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--png", default="controller_trace.png")
    ap.add_argument("--dataset", default="cg-digits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", default="pid", choices=("pid", "mi"))
    ap.add_argument("--overrides", default=json.dumps(DEFAULT_OVERRIDES))
    a = ap.parse_args(argv)

    from multimodal_sched.experiments._common import base_config, run_or_reuse
    from multimodal_sched.plots import marked_events, plot_atoms, read_events

    cfg = base_config(a.dataset, a.seed, overrides=json.loads(a.overrides)).replace(method=a.method)
    res = run_or_reuse(cfg, a.run_dir)
    events = read_events(a.run_dir)
    probes = [e for e in events if e["type"] == "probe"]
    print(f"{a.dataset} seed {a.seed} method {a.method}: {len(probes)} probes")
    for p in probes:
        iv = p.get("interval") or {}
        atoms = "  ".join(f"{k} {p[k]:.3f} [{iv[k][0]:.3f}, {iv[k][1]:.3f}]" if k in iv else f"{k} {p[k]:.3f}"
                          for k in ("R", "U1", "U2", "S") if isinstance(p.get(k), (int, float)))
        d = p.get("decision") or {}
        print(f"  epoch {p['epoch']:>2} (n={p.get('n')}, k={p.get('k')}): {atoms}  -> {d.get('rule')}: "
              f"train {d.get('modalities')}{'  STAGE II' if d.get('start_joint') else ''}")
    for e in events:
        if e["type"] in ("restore", "rollback", "fallback"):
            print("  " + json.dumps({k: v for k, v in e.items() if k != "time"}))
    print(f"Stage I epochs {res.get('stage1_epochs')}, test (val-selected) {100 * res['test_accuracy']:.1f}%")
    os.makedirs(os.path.dirname(os.path.abspath(a.png)), exist_ok=True)
    plot_atoms(probes, a.png, extra=marked_events(events))
    print(f"wrote {a.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
