"""DistributedDataParallel on CPU (gloo, 2 processes) against the single-process run."""
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from multimodal_sched import RunConfig, RunInterrupted, run
from multimodal_sched.distributed import ShardedBatchSampler

# synthetic uses MLP encoders (no BatchNorm): DDP then computes the same
# gradients as one process, up to summation order.
CFG = dict(dataset="synthetic", dataset_options={"n_train": 256}, width=8, batch_size=64, max_unimodal_epochs=4,
           probe_every=2, stage2_epochs=2, k=5, pca_dims=3, pid_method="exact", probe_boot=20, progress=False, plots=False,
           tau_u=1.2, lr_stage1=0.05)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, cfg, out, resume_check):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    res = run(RunConfig(**cfg))   # the same run() on every rank, under torchrun-style env vars
    rec = {"decisions": [p["decision"] for p in res.probes], "S": [p["S"] for p in res.probes],
           "stage1": res.stage1_epochs, "test": res.test_accuracy}
    if resume_check:   # interrupt inside Stage I, resume on the same ranks (the group is reused)
        part = cfg["out"] + "-part"
        with pytest.raises(RunInterrupted):
            run(RunConfig(**{**cfg, "out": part}), interrupt_after=3)
        again = run(None, resume=part)
        rec["resumed"] = {"decisions": [p["decision"] for p in again.probes], "test": again.test_accuracy}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(rec, f)


def _spawn(tmp_path, cfg, resume_check=False):
    port = _free_port()
    mp.start_processes(_worker, args=(2, port, cfg, str(tmp_path), resume_check), nprocs=2, join=True,
                       start_method="spawn")
    return [json.load(open(tmp_path / f"rank{r}.json")) for r in (0, 1)]


def test_sharded_sampler_covers_the_single_process_batches():
    n, bs = 10, 4
    single = [b for b in torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(range(n), generator=torch.Generator().manual_seed(3)), bs, False)]
    shards = [list(ShardedBatchSampler(n, bs, generator=torch.Generator().manual_seed(3), drop_last=False,
                                       rank=r, world=2)) for r in (0, 1)]
    for b, s0, s1 in zip(single, *shards):
        assert sorted(s0 + s1) == sorted(b) and s0 == b[0::2]
    assert ShardedBatchSampler(n, bs, drop_last=False, rank=0, world=2).global_sizes() == [4, 4, 2]
    assert ShardedBatchSampler(9, 4, drop_last=False, rank=0, world=2).global_sizes() == [4, 4]  # 1 < 2 ranks


def test_ddp_smoke_two_ranks_agree(tmp_path):
    """Fast smoke test: 2 gloo ranks finish a tiny run, every rank sees the same probes, rank 0 writes."""
    cfg = {**CFG, "max_unimodal_epochs": 2, "stage2_epochs": 1, "out": str(tmp_path / "run")}
    r0, r1 = _spawn(tmp_path, cfg)
    assert r0 == r1
    d = tmp_path / "run"
    assert (d / "result.json").is_file() and (d / "checkpoints" / "last.pt").is_file()
    events = [json.loads(x) for x in open(d / "events.jsonl")]
    assert sum(e["type"] == "probe" for e in events) == len(r0["decisions"])   # written once, by rank 0


@pytest.mark.slow
def test_ddp_matches_single_process_decisions(tmp_path):
    """Same seed: the 2-rank run makes the single-process run's decisions; interrupt + resume under DDP is exact."""
    single = run(RunConfig(**{**CFG, "out": str(tmp_path / "single")}))
    r0, r1 = _spawn(tmp_path, {**CFG, "out": str(tmp_path / "ddp")}, resume_check=True)
    assert r0 == r1
    assert r0["decisions"] == [p["decision"] for p in single.probes]
    assert r0["resumed"] == {"decisions": r0["decisions"], "test": r0["test"]}   # resume under DDP is exact
    assert r0["stage1"] == single.stage1_epochs
    assert r0["S"] == pytest.approx([p["S"] for p in single.probes], abs=1e-6)
