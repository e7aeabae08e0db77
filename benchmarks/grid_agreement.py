"""Does the grid agree with the controller?  Rank of a controller run's accuracy among the grid's.

    python benchmarks/grid_agreement.py --grid DIR/grid.json --run RUN_DIR [RUN_DIR ...]

``DIR`` is ``python -m multimodal_sched grid --dataset D --seed S --out DIR`` with the same
``--overrides`` as the runs (the controller's Stage II is then the grid's); each ``RUN_DIR`` holds a
``pid`` (or ``mi``) run of the same dataset and seed.  Prints, for both protocols, the run's test
accuracy, its rank among the grid's 25 Stage II accuracies (1 = best) and whether it is in the top
quarter (the controller target: top 6 of 25).
"""
from __future__ import annotations

import argparse
import json
import os


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", required=True)
    ap.add_argument("--run", nargs="+", required=True)
    a = ap.parse_args(argv)
    g = json.load(open(a.grid))
    rows = g["rows"]
    top = max(1, len(rows) // 4)
    for run_dir in a.run:
        r = json.load(open(os.path.join(run_dir, "result.json")))
        if (r["dataset"], r["seed"]) != (g["meta"]["dataset"], g["meta"]["seed"]):
            raise SystemExit(f"{run_dir}: {r['dataset']} seed {r['seed']} is not the grid's "
                             f"{g['meta']['dataset']} seed {g['meta']['seed']}")
        best = (r.get("test_best_epoch") or {}).get("accuracy")
        for proto, acc in (("test_val_selected", r["test_accuracy"]), ("test_best_epoch", best)):
            if acc is None:
                continue
            grid_acc = sorted((row[proto] for row in rows), reverse=True)
            rank = 1 + sum(x > acc for x in grid_acc)
            print(f"{run_dir} ({r['method']}, Stage I {r['stage1_epochs']}): {proto} {100 * acc:.1f}% -> rank "
                  f"{rank} of {len(rows)} (top {top}: {'yes' if rank <= top else 'no'}; grid best "
                  f"{100 * grid_acc[0]:.1f}%, {top}th {100 * grid_acc[top - 1]:.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
