"""Scale-out: the scheduler's run under ``torchrun`` with DistributedDataParallel.

    torchrun --nproc-per-node 4 -m multimodal_sched run --config cremad.yaml

Every rank builds the same data, models and optimizers from the seed.  What
changes when ``WORLD_SIZE > 1``:

* **Batches.**  The single-process loader's order is kept: a
  :class:`ShardedBatchSampler` draws the same global batches from the same
  seeded generator as ``DataLoader(shuffle=True)``, and rank ``r`` takes items
  ``r, r + N, ...`` of each.  Per-rank losses are weighted by
  ``shard / global batch`` so DDP's gradient average equals the gradient of the
  global batch mean.  ``config.batch_size`` is therefore the *global* batch.
* **Models.**  Stage I wraps each (encoder, head) pair and Stage II the joint
  model in ``DistributedDataParallel`` (backend ``gloo`` on CPU, ``nccl`` on
  CUDA; ``LOCAL_RANK`` picks the GPU).  BatchNorm statistics are per rank
  during an epoch (DDP's default) and rank 0's running statistics are broadcast
  after every epoch, so evaluation, probing and checkpoints see one model.
* **Evaluation and probing.**  Val/test metrics are summed over ranks.  Probe
  embeddings are computed on shards, gathered in the original order, and rank
  0 computes the PID and broadcasts it: every rank's controller sees the same
  R, U1, U2, S and makes the same decision.
* **Files.**  Only rank 0 writes ``events.jsonl``, checkpoints, ``result.json``
  and plots; ranks meet at a barrier after each checkpoint.  ``--resume`` works
  the same way.
* **Mixed precision.**  ``config.amp = True`` runs the training forward passes
  under ``torch.autocast`` with bfloat16 (CUDA; also accepted on CPU); losses,
  evaluation and probing stay in float32.

Differences from a single-process run with the same seed come only from
floating-point summation order and, for models with BatchNorm, from per-rank
batch statistics; with BatchNorm-free encoders the controller's decisions
match (tests/test_datasets_ddp.py).

:class:`ScaledRunner` is also used in a single process when the probe
embedding cache is wanted (``run_scaled(config, probe_cache=True)``): embeddings of
the probe split are kept per encoder and reused at the next probe when that
encoder has not trained since (a paused modality), and written to
``RUN_DIR/probe_cache/epoch_NNNN.npz`` for offline PID calls.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, RandomSampler, Sampler


from . import probing
from .config import RunConfig
from .lr_schedule import set_lr as _set_lr, step_lr
from .run import RunResult, _Runner, _build_data, _default_out, _validate_against_data

__all__ = ["launched_by_torchrun", "ShardedBatchSampler", "ScaledRunner", "run_scaled"]

log = logging.getLogger(__name__)


def launched_by_torchrun() -> bool:
    """True when the environment says several processes run this job (``WORLD_SIZE > 1``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _rank_world():
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


class _Uni(nn.Module):
    """(encoder, head) as one module so one DDP wrapper syncs both."""

    def __init__(self, enc, head):
        super().__init__()
        self.enc, self.head = enc, head

    def forward(self, x):
        return self.head(self.enc(x))


def _all_sum(values: list, device) -> list:
    rank, world = _rank_world()
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _sync_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank."""
    rank, world = _rank_world()
    if world == 1:
        return
    for b in module.buffers():
        dist.broadcast(b.data, src=0)


def _broadcast_obj(obj):
    rank, world = _rank_world()
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class ScaledRunner(_Runner):
    """The single-process runner made rank-aware (see the module docstring)."""

    def __init__(self, config: RunConfig, data, encoders, run_dir: str, *, probe_cache: bool = False,
                 lr_step: int | None = None, lr_gamma: float = 0.1, amp: bool = False):
        super().__init__(config, data, encoders, run_dir)
        self.rank, self.world = _rank_world()
        self.amp = amp
        self.use_cache, self.lr_step, self.lr_gamma = probe_cache, lr_step, lr_gamma
        self._cache = {}          # modality -> (modality_epochs, embeddings)
        n = len(data.splits["train"])
        drop = n > config.batch_size
        self.samplers = {k: ShardedBatchSampler(n, config.batch_size, generator=g, drop_last=drop,
                                                rank=self.rank, world=self.world) for k, g in self.gens.items()}
        # generator= also feeds the loader's per-iterator base seed, as in the single-process loader
        self.loaders = {k: DataLoader(data.splits["train"], batch_sampler=s, generator=self.gens[k])
                        for k, s in self.samplers.items()}
        self.shard_loaders = {}
        for s in ("val", "probe", "test"):
            ds = data.splits[s]
            idx = list(range(self.rank, len(ds), self.world))
            self.shard_loaders[s] = DataLoader(torch.utils.data.Subset(ds, idx), batch_size=256, shuffle=False)
        self.ddp_uni = {}
        self.ddp_joint = None
        if self.world > 1:
            kw = {} if self.device.type == "cpu" else {"device_ids": [self.device]}
            for m in (1, 2):
                self.ddp_uni[m] = DDP(_Uni(getattr(self.model, f"encoder{m}"), getattr(self.model, f"head{m}")), **kw)
            self._ddp_kw = kw

    # ----------------------------------------------------------- rank 0 writes
    def event(self, **ev) -> None:
        if self.rank == 0:
            super().event(**ev)
        else:
            self.n_events += 1

    def save(self) -> None:
        if self.rank == 0:
            super().save()
        if self.world > 1:
            dist.barrier()

    def load(self) -> None:
        if self.rank == 0:
            super().load()
        if self.world > 1:
            dist.barrier()
        if self.rank != 0:
            super().load()   # rank 0 already trimmed events.jsonl: this rewrite is a no-op
        if self.world > 1:
            dist.barrier()   # nobody appends events before every rank has read the checkpoint

    def _save_best(self, key, val, epoch, modules) -> None:
        if self.rank == 0:
            super()._save_best(key, val, epoch, modules)
        else:
            b = self.best.get(key)
            if b is None or val > b["val"]:
                self.best[key] = {"val": val, "epoch": epoch}

    # ------------------------------------------------------------ train / eval
    def _autocast(self):
        """bfloat16 autocast for the forward pass when ``amp`` (no loss scaling needed for bfloat16)."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def _train_uni(self, m: int) -> dict:
        enc, head = getattr(self.model, f"encoder{m}"), getattr(self.model, f"head{m}")
        net = self.ddp_uni.get(m) or _Uni(enc, head)
        opt = self.opts[f"m{m}"]
        _set_lr(opt, step_lr(self.cfg.lr_stage1, self.modality_epochs[m - 1], self.lr_step, self.lr_gamma))
        net.train()
        sizes = self.samplers[f"m{m}"].global_sizes()
        tot, correct, n = 0.0, 0, 0
        for b, batch in enumerate(self.loaders[f"m{m}"]):
            x, y = batch[m - 1].to(self.device), batch[2].to(self.device)
            with self._autocast():
                logits = net(x).float()
            loss = F.cross_entropy(logits, y, reduction="sum") * (self.world / sizes[b])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"Stage I modality {m}: loss became {loss.item()}; lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item() * sizes[b] / self.world
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        _sync_buffers(enc)
        _sync_buffers(head)
        tot, correct, n = _all_sum([tot, correct, n], self.device)
        return {"loss": tot / n, "acc": correct / n}

    @torch.no_grad()
    def _eval(self, split: str, m: int | None) -> dict:
        model = self.model
        model.eval()
        tot, c, c1, c2, n = 0.0, 0, 0, 0, 0
        for x1, x2, y in self.shard_loaders[split]:
            x1, x2, y = x1.to(self.device), x2.to(self.device), y.to(self.device)
            if m is None:
                fused, l1, l2 = model(x1, x2)
                c1 += (l1.argmax(1) == y).sum().item()
                c2 += (l2.argmax(1) == y).sum().item()
            else:
                fused = getattr(model, f"head{m}")(getattr(model, f"encoder{m}")(x1 if m == 1 else x2))
            tot += F.cross_entropy(fused, y, reduction="sum").item()
            c += (fused.argmax(1) == y).sum().item()
            n += len(y)
        model.train()
        tot, c, c1, c2, n = _all_sum([tot, c, c1, c2, n], self.device)
        return {"loss": tot / n, "acc": c / n, "acc1": c1 / n, "acc2": c2 / n}

    def _train_joint(self) -> dict:
        if self.world > 1 and self.ddp_joint is None:
            self.ddp_joint = DDP(self.model, **self._ddp_kw)
        net = self.ddp_joint or self.model
        base = self.cfg.lr_stage1 if self.cfg.method == "joint" else self.cfg.lr_stage2
        _set_lr(self.opt_joint, step_lr(base, self.stage2_epoch - 1, self.lr_step, self.lr_gamma))
        net.train()
        sizes = self.samplers["joint"].global_sizes()
        w = self.cfg.aux_weight
        tot, correct, n = 0.0, 0, 0
        for b, (x1, x2, y) in enumerate(self.loaders["joint"]):
            x1, x2, y = x1.to(self.device), x2.to(self.device), y.to(self.device)
            with self._autocast():
                fused, l1, l2 = (z.float() for z in net(x1, x2))
            ce = lambda z: F.cross_entropy(z, y, reduction="sum")  # noqa: E731
            loss = (ce(fused) + w * (ce(l1) + ce(l2))) * (self.world / sizes[b])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"Stage II: loss became {loss.item()}; lower the learning rate")
            self.opt_joint.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_joint.step()
            tot += loss.item() * sizes[b] / self.world
            correct += (fused.argmax(1) == y).sum().item()
            n += len(y)
        _sync_buffers(self.model)
        tot, correct, n = _all_sum([tot, correct, n], self.device)
        return {"loss": tot / n, "acc": correct / n}

    # ------------------------------------------------------------------- probe
    def _embed(self, m: int) -> tuple:
        enc = getattr(self.model, f"encoder{m}")
        key = self.modality_epochs[m - 1]
        hit = self._cache.get(m)
        if self.use_cache and hit is not None and hit[0] == key:
            return hit[1], hit[2]
        was = enc.training
        enc.eval()
        zs, ys = [], []
        with torch.no_grad():
            for batch in self.shard_loaders["probe"]:
                zs.append(enc(batch[m - 1].to(self.device)).float().cpu())
                ys.append(batch[2].reshape(-1).cpu())
        enc.train(was)
        z, y = torch.cat(zs), torch.cat(ys)
        if self.world > 1:   # gather the shards; rank r holds items r, r + N, ...
            n_total = len(self.data.splits["probe"])
            parts = [None] * self.world
            dist.all_gather_object(parts, (z.numpy(), y.numpy()))
            zf = np.empty((n_total, z.shape[1]), dtype=np.float32)
            yf = np.empty(n_total, dtype=np.int64)
            for r, (zr, yr) in enumerate(parts):
                zf[r::self.world], yf[r::self.world] = zr, yr
            z, y = zf, yf
        else:
            z, y = z.numpy(), y.numpy()
        if self.use_cache:
            self._cache[m] = (key, z, y)
        return z, y

    def do_probe(self) -> dict:
        cfg = self.cfg
        (z1, y), (z2, _) = self._embed(1), self._embed(2)
        if self.use_cache and self.rank == 0:
            d = os.path.join(self.dir, "probe_cache")
            os.makedirs(d, exist_ok=True)
            np.savez(os.path.join(d, f"epoch_{self.stage1_epoch:04d}.npz"), z1=z1, z2=z2, y=y,
                     modality_epochs=np.array(self.modality_epochs))
        obs = None
        if self.rank == 0:
            counts = probing.probe_histogram(z1, z2, y, k=cfg.k, pca_dims=cfg.pca_dims, seed=cfg.seed,
                                             binning=cfg.binning)
            obs = probing.observe_counts(counts, signal="pid" if cfg.method == "pid" else "mi",
                                         pid_method=cfg.pid_method)
        return _broadcast_obj(obs)

    # -------------------------------------------------------------- the stages
    def run_stage1(self, bar) -> None:
        cfg = self.cfg
        while True:
            mods = self.stage1_plan()
            if mods is None:
                break
            self.stage1_epoch += 1
            ev = {"type": "epoch", "phase": "stage1", "epoch": self.stage1_epoch}
            for m in mods:
                tr = self._train_uni(m)
                va = self._eval("val", m)
                self.modality_epochs[m - 1] += 1
                ev[f"m{m}"] = {"train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": va["loss"],
                               "val_acc": va["acc"], "modality_epoch": self.modality_epochs[m - 1]}
                if cfg.method == "unimodal":
                    self._save_best(f"m{m}", va["acc"], self.stage1_epoch,
                                    {"encoder": getattr(self.model, f"encoder{m}"), "head": getattr(self.model, f"head{m}")})
            ev["modality_epochs"] = list(self.modality_epochs)
            self.event(**ev)
            bar.update(1)
            if self.controller is not None and self.controller.due(self.stage1_epoch):
                obs = self.do_probe()
                dec = self.controller.observe(obs, self.stage1_epoch)
                rec = {"epoch": self.stage1_epoch, "modality_epochs": list(self.modality_epochs), **obs,
                       "decision": dec.to_dict(), "reason": dec.reason}
                self.probes.append(rec)
                self.event(type="probe", **rec)
                log.info("probe at Stage I epoch %d: %s", self.stage1_epoch, dec.reason)
            self._tick()
        self.phase = "done" if cfg.method == "unimodal" else "stage2"
        if self.phase == "stage2":
            self.event(type="stage2_start", stage1_epoch=self.stage1_epoch, modality_epochs=list(self.modality_epochs))
        self.save()

    def run_stage2(self, bar) -> None:
        cfg = self.cfg
        n = cfg.joint_epochs if cfg.method == "joint" else cfg.stage2_epochs
        if self.opt_joint is None:
            self._make_joint_opt()
        while self.stage2_epoch < n:
            self.stage2_epoch += 1
            tr = self._train_joint()
            va = self._eval("val", None)
            self.event(type="epoch", phase="stage2", epoch=self.stage2_epoch, train_loss=tr["loss"],
                       train_acc=tr["acc"], val_loss=va["loss"], val_acc=va["acc"], val_acc1=va["acc1"],
                       val_acc2=va["acc2"])
            self._save_best("joint", va["acc"], self.stage2_epoch, {"model": self.model})
            bar.update(1)
            self._tick()
        self.phase = "done"
        self.save()

    def finish(self, t0: float) -> RunResult:
        res = super().finish(t0) if self.rank == 0 else None
        d = _broadcast_obj(None if res is None else res.to_dict())
        if self.world > 1:
            dist.barrier()
        return res if res is not None else RunResult(**d)


def run_scaled(config, data=None, encoders=None, *, resume: str | None = None, interrupt_after: int | None = None,
               probe_cache: bool | None = None) -> RunResult:
    """:func:`multimodal_sched.run` for one process or for every rank of a ``torchrun`` job.

    Same arguments and result as ``run`` (``probe_cache`` overrides
    ``config.probe_cache``); under torchrun each rank calls it and gets
    the same :class:`RunResult` (``model`` only on rank 0).  The process group
    is created from torchrun's environment when not yet initialized and kept
    for later runs in the process (destroyed at exit).  With ``resume`` the
    run directory's config.json is used and ``config`` is ignored.
    """
    from tqdm.auto import tqdm

    from .config import load_config

    t0 = time.time()
    cfg0 = config
    if resume is not None:
        cfg0 = load_config(os.path.join(resume, "config.json")).replace(out=resume)
    elif isinstance(config, dict):
        cfg0 = RunConfig.from_dict(config)
    elif isinstance(config, str):
        cfg0 = load_config(config)
    elif config is None:
        cfg0 = RunConfig()
    config = cfg0
    device = config.device
    if launched_by_torchrun():
        rank, world, device = init_process_group(config.device)
        if device != config.device:
            config = config.replace(device=device)
    rank, world = _rank_world()
    from .datasets import REGISTRY, build_dataset
    file_based = data is None and config.dataset in REGISTRY   # the loader checks data_path itself
    (config if data is None and not file_based else config.replace(dataset="cg-digits", data_path=None)).validate()
    if data is None:
        if file_based:
            mdata, auto_enc = build_dataset(config)
            encoders = encoders or auto_enc
        else:
            mdata = _build_data(config, None)
    else:
        mdata = _build_data(config, data)
    _validate_against_data(config, mdata)
    run_dir = _broadcast_obj(config.out or _default_out(config))
    if resume is None:
        if rank == 0:
            if os.path.exists(os.path.join(run_dir, "config.json")):
                err = f"run directory {run_dir!r} already holds a run; pass resume={run_dir!r} or choose another out"
            else:
                err = None
                os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
                with open(os.path.join(run_dir, "config.json"), "w") as f:
                    json.dump(config.replace(out=run_dir, device=cfg0.device).to_dict(), f, indent=2)
                open(os.path.join(run_dir, "events.jsonl"), "w").close()
        else:
            err = None
        err = _broadcast_obj(err)
        if err:
            raise ValueError(err)
        config = config.replace(out=run_dir)
    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        runner = ScaledRunner(
            config, mdata, encoders, run_dir,
            probe_cache=bool(getattr(config, "probe_cache", False) if probe_cache is None else probe_cache),
            lr_step=getattr(config, "lr_step_epochs", None), lr_gamma=getattr(config, "lr_gamma", 0.1),
            amp=bool(getattr(config, "amp", False)))
        runner.interrupt_after = interrupt_after
        if resume is not None:
            runner.load()
        show = config.progress and rank == 0
        if runner.phase == "stage1":
            total = {"unimodal": config.unimodal_epochs, "schedule": max(config.schedule_epochs)}.get(
                config.method, config.max_unimodal_epochs)
            with tqdm(total=total, initial=runner.stage1_epoch, desc=f"{config.method} stage I",
                      disable=not show, leave=False) as bar:
                runner.run_stage1(bar)
        if runner.phase == "stage2":
            total = config.joint_epochs if config.method == "joint" else config.stage2_epochs
            with tqdm(total=total, initial=runner.stage2_epoch, desc=f"{config.method} stage II",
                      disable=not show, leave=False) as bar:
                runner.run_stage2(bar)
        return runner.finish(t0)
    finally:
        torch.set_num_threads(threads)
