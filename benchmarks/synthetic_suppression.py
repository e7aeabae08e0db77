"""Does naive joint training suppress the weak modality on ``synthetic``?  (the paper's Section 3)

    python benchmarks/synthetic_suppression.py --seeds 0 1 2

Per seed: the weak modality 1 trained alone (``unimodal``, its encoder + own head, val-selected)
against the same branch inside a jointly trained model (``concat`` method: fused loss only, sum
fusion ``W1 z1 + W2 z2 + b``, the head shared by both sums); the branch's test accuracy is the
argmax of ``W1 z1 + b`` of the val-selected joint model.  Prints one line per seed and the mean.
"""
import argparse
import json
import tempfile

import numpy as np
import torch

import multimodal_sched as ms
from multimodal_sched import RunConfig, run


def weak_branch_accuracy(model, ds) -> float:
    x1, _, y = ds.tensors
    model.eval()
    with torch.no_grad():
        return (model.fusion.fc1(model.encoder1(x1)).argmax(1) == y).double().mean().item()


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--options", type=json.loads, default={}, help="dataset_options (JSON)")
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            base = dict(dataset="synthetic", dataset_options=a.options, seed=seed, fusion="sum",
                        progress=False, plots=False)
            alone = run(RunConfig(**base, method="unimodal", out=f"{tmp}/u{seed}")).unimodal["1"]["test_accuracy"]
            joint = run(RunConfig(**base, method="concat", out=f"{tmp}/j{seed}"))
            inside = weak_branch_accuracy(joint.model, ms.make_synthetic(seed=seed, **a.options).splits["test"])
            rows.append((alone, inside, joint.test_accuracy))
            print(f"seed {seed}: weak modality alone {alone:.3f}, weak branch inside the joint model {inside:.3f}, "
                  f"joint (fused) {joint.test_accuracy:.3f}", flush=True)
    m = np.mean(rows, axis=0)
    print(f"mean: alone {m[0]:.3f}, inside joint {m[1]:.3f} (difference {m[1] - m[0]:+.3f}), fused {m[2]:.3f}")


if __name__ == "__main__":
    main()
