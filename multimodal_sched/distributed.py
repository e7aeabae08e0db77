"""What the runner needs to be rank-aware: the process group, sharded batches, collectives.

    torchrun --nproc-per-node 4 -m multimodal_sched run --config cremad.yaml

Every rank builds the same data, models and optimizers from the seed.  What changes when
``WORLD_SIZE > 1`` (with one process every helper here is the identity):

* **Batches.**  :class:`ShardedBatchSampler` draws the same global batches from the same seeded
  generator as ``DataLoader(shuffle=True)``, and rank ``r`` takes items ``r, r + N, ...`` of each.
* **Models.**  Stage I wraps each (encoder, head) pair and Stage II the joint model in
  ``DistributedDataParallel`` (backend ``gloo`` on CPU, ``nccl`` on CUDA; ``LOCAL_RANK`` picks the
  GPU).  BatchNorm statistics are per rank during an epoch (DDP's default) and rank 0's running
  statistics are broadcast after every epoch (:func:`sync_buffers`), so evaluation, probing and
  checkpoints see one model.
* **Evaluation and probing.**  Metrics are summed over ranks (:func:`all_sum`).  Probe embeddings
  are computed on shards and gathered in the original order (:func:`gather_strided`); rank 0
  computes the PID and broadcasts it (:func:`broadcast_obj`), so every rank's controller makes the
  same decision.
* **Files.**  Only rank 0 writes the run directory; ranks meet at a barrier after each checkpoint.

Differences from a single-process run with the same seed come only from floating-point summation
order and, for models with BatchNorm, from per-rank batch statistics; with BatchNorm-free encoders
the controller's decisions match (tests/test_datasets_ddp.py).
"""
from __future__ import annotations

import atexit
import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import RandomSampler, Sampler

__all__ = ["launched_by_torchrun", "rank_world", "init_process_group", "ShardedBatchSampler", "DDP",
           "all_sum", "sync_buffers", "broadcast_obj", "barrier", "gather_strided"]


def launched_by_torchrun() -> bool:
    """True when the environment says several processes run this job (``WORLD_SIZE > 1``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_world() -> tuple:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_process_group(device: str) -> tuple:
    """Join the torchrun job (gloo on CPU, nccl on CUDA); returns (rank, world, device)."""
    if not (dist.is_available() and dist.is_initialized()):
        backend = "nccl" if str(device).startswith("cuda") and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        # kept for later runs in this process (re-creating a group on the same port is fragile)
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    rank, world = dist.get_rank(), dist.get_world_size()
    if str(device).startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count())))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return rank, world, device


class ShardedBatchSampler(Sampler):
    """The global batches of ``DataLoader(ds, batch_size, shuffle=True, generator=g, drop_last)``, one shard per rank.

    ``generator`` is consumed exactly as the single-process loader consumes it.
    A global batch with fewer items than ranks is dropped on every rank (it
    would leave a rank without data).  ``global_sizes()`` are the global batch
    sizes, in order, for loss weighting.
    """

    def __init__(self, n: int, batch_size: int, *, generator=None, drop_last: bool, rank: int, world: int,
                 shuffle: bool = True):
        self.n, self.bs, self.gen, self.drop_last = n, batch_size, generator, drop_last
        self.rank, self.world, self.shuffle = rank, world, shuffle

    def global_sizes(self) -> list:
        sizes = [self.bs] * (self.n // self.bs)
        if self.n % self.bs and not self.drop_last:
            sizes.append(self.n % self.bs)
        return [s for s in sizes if s >= self.world]

    def __iter__(self):
        order = iter(RandomSampler(range(self.n), generator=self.gen)) if self.shuffle else iter(range(self.n))
        batch = []
        for i in order:
            batch.append(i)
            if len(batch) == self.bs:
                yield batch[self.rank::self.world]
                batch = []
        if batch and not self.drop_last and len(batch) >= self.world:
            yield batch[self.rank::self.world]

    def __len__(self):
        return len(self.global_sizes())


def all_sum(values: list, device) -> list:
    """Element-wise sum over ranks (float64)."""
    if rank_world()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def sync_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank."""
    if rank_world()[1] == 1:
        return
    for b in module.buffers():
        dist.broadcast(b.data, src=0)


def broadcast_obj(obj):
    """Rank 0's ``obj`` on every rank (picklable objects)."""
    if rank_world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier()


def gather_strided(z: np.ndarray, y: np.ndarray, n_total: int) -> tuple:
    """Rows ``r, r + N, ...`` held by rank ``r`` -> all ``n_total`` rows in order, on every rank."""
    rank, world = rank_world()
    if world == 1:
        return z, y
    parts = [None] * world
    dist.all_gather_object(parts, (z, y))
    zf = np.empty((n_total, z.shape[1]), dtype=z.dtype)
    yf = np.empty(n_total, dtype=y.dtype)
    for r, (zr, yr) in enumerate(parts):
        zf[r::world], yf[r::world] = zr, yr
    return zf, yf
