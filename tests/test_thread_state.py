"""A seeded run does not depend on what ran before it in the process.

numba's ``omp`` threading layer, when its pool starts (fastpid's first batched
exact solve, e.g. a probe's bootstrap), sets the OpenMP thread count it shares
with torch (numba issue #9387).  Before fastpid put the caller's count back, the
first run of a process trained on every core after its first probe and every
later run on ``num_threads``: the same seed gave other numbers depending on
whether a run had come before it (found in compare tables run seed after seed).
Both tests run in a fresh interpreter with ``OMP_NUM_THREADS=1``, where the pool
has not started yet."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_batched_exact_solve_keeps_torch_thread_count():
    code = """
import numpy as np, torch, fastpid
torch.set_num_threads(1)
assert torch.get_num_threads() == 1   # (reading it first is what exposes the reset)
P = np.random.default_rng(0).dirichlet(np.ones(27), size=16).reshape(16, 3, 3, 3)
fastpid.pid(P)          # starts numba's thread pool
fastpid.pid(P)
print(torch.get_num_threads())
"""
    assert _fresh(code) == "1"


def test_same_seed_same_run_first_or_second_in_process(tmp_path):
    pytest.importorskip("sklearn")
    cfg = dict(dataset="cg-digits", dataset_options={"n_train": 400, "color_corr": 0.0}, width=8, batch_size=32,
               max_unimodal_epochs=2, first_probes=[0, 1], probe_every=1, stage2_epochs=1, joint_epochs=1,
               fallback=False, val_patience=None, progress=False, plots=False, seed=1)
    code = f"""
import json, multimodal_sched as ms
cfg = json.loads({json.dumps(json.dumps(cfg))})
runs = []
for name in ("first", "second"):
    r = ms.run(ms.RunConfig(out={str(tmp_path)!r} + "/" + name, **cfg))
    events = [json.loads(l) for l in open({str(tmp_path)!r} + "/" + name + "/events.jsonl")]
    runs.append([(e.get("phase"), e.get("epoch"), e.get("m1") or e.get("m2") or e.get("train_loss"))
                 for e in events if e["type"] == "epoch"] + [r.test_accuracy])
print(json.dumps(runs))
"""
    first, second = json.loads(_fresh(code))
    assert first == second
