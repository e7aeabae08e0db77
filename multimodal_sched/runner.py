"""``run(config, data=None, encoders=None) -> RunResult``: one training run, in one process or under torchrun.

    multimodal-sched run --config cfg.yaml                              # one process
    torchrun --nproc-per-node 4 -m multimodal_sched run --config cfg.yaml  # DistributedDataParallel

One loop, rank-aware; a single process is a world of size 1 (see :mod:`multimodal_sched.distributed`
for what changes with more ranks).  Methods: ``pid`` and ``mi`` run Algorithm 1 (controller +
probes) then Stage II; ``schedule`` trains encoder 1 for ``schedule_epochs[0]`` and encoder 2 for
``schedule_epochs[1]`` epochs (in parallel) then Stage II; ``joint`` is joint training from scratch
(``joint_epochs`` epochs at ``lr_stage1``); ``unimodal`` trains each encoder with its own head for
``unimodal_epochs``; ``sequential`` and ``udi`` ask a :mod:`multimodal_sched.schedules` schedule which
modality trains each Stage I epoch.  Stage II (and ``joint``) calls the strategy ``config.stage2`` at the
hook points of :mod:`multimodal_sched.methods.base`; the strategy methods (``ogm-ge``, ``pmr``, ...) are
``joint`` with that strategy (:meth:`RunConfig.strategy_spec`).  Model selection uses the val split only;
the test split is evaluated once, on the selected checkpoint.  The run directory is :mod:`multimodal_sched.rundir`.

Per-rank losses are weighted by ``shard / global batch`` so that DDP's gradient average is the
gradient of the global batch mean (``config.batch_size`` is the global batch); with one process the
weight is 1 and the loss is used as it is.
"""
from __future__ import annotations

import copy
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset

from . import distributed as D
from . import probing
from .config import SCHEDULE_METHODS, RunConfig, load_config
from .controller import Controller
from .data import MultimodalData, build_dataset
from .lr_schedule import set_lr, step_lr
from .methods import JointOutput, get_strategy
from .methods.mla import MLAFusion
from .models import CNN4, FUSIONS, MLP, JointModel, Projected, ResNet18, default_encoder, infer_out_dim
from .rundir import RunDir, RunDirError

__all__ = ["run", "RunResult", "RunInterrupted", "Runner", "make_optimizer", "falls_back"]

log = logging.getLogger(__name__)


class RunInterrupted(RuntimeError):
    """Raised by ``run(..., interrupt_after=N)`` after N epochs (the state is checkpointed)."""


@dataclass
class RunResult:
    """Outcome of a run.  Accuracies are fractions in [0, 1].

    test_accuracy : test accuracy of the checkpoint selected on val (for
        ``unimodal``: of the modality with the better val accuracy).
    val_accuracy : val accuracy of that checkpoint.
    selected : which checkpoint was selected (phase, epoch, modality).
    stage1_epochs : epochs each encoder trained in Stage I.
    unimodal : for ``unimodal``: per-modality {"val_accuracy", "test_accuracy", "epoch"}.
    probes : every probe (epoch, per-modality epochs, R/U1/U2/S/I1/I2 in bits, decision).
    test_best_epoch : with ``config.track_test``: ``{"accuracy", "epoch"}`` of the Stage II (joint)
        epoch with the best *test* accuracy (for ``unimodal``: of the selected modality's best
        epoch on test) - the protocol of the authors' public code, reported beside the
        val-selected ``test_accuracy``, never used for selection; None otherwise.
    """

    method: str
    dataset: str
    seed: int
    test_accuracy: float
    val_accuracy: float
    selected: dict
    stage1_epochs: list
    unimodal: dict = field(default_factory=dict)
    probes: list = field(default_factory=list)
    run_dir: str | None = None
    fallback: dict | None = None
    wall_time_s: float = 0.0
    test_best_epoch: dict | None = None
    model: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("model")
        return d


def falls_back(b: int, c: int, z: float, rule: str = "worse") -> bool:
    """The fallback's paired (McNemar) test on val: b / c samples only the scheduled / only the
    plain joint model gets right.  ``"worse"``: fall back when c - b > z sqrt(b + c);
    ``"not-better"``: fall back unless b - c > z sqrt(b + c)."""
    threshold = z * np.sqrt(b + c)
    return bool(c - b > threshold) if rule == "worse" else not b - c > threshold


def make_optimizer(params, *, name: str, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4):
    """SGD with momentum or Adam."""
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


def _make_encoder(config: RunConfig, shape: tuple) -> nn.Module:
    if config.encoder == "auto":
        return default_encoder(shape, width=config.width)
    if config.encoder == "cnn4":
        return CNN4(shape[0], config.width)
    if config.encoder == "resnet18":
        return ResNet18(shape[0], config.width, small_input=min(shape[-2:]) < 64)
    return MLP(int(np.prod(shape)), (4 * config.width, 2 * config.width))


def _rng_state(gens: dict) -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "gens": {k: g.get_state() for k, g in gens.items()}}


def _set_rng_state(st: dict, gens: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    for k, g in gens.items():
        g.set_state(st["gens"][k])


def _check_loss(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{where}: loss became {loss.item()}; lower the learning rate")


def probe_dataset(config: RunConfig, data: MultimodalData):
    """What the controller's probes embed: the probe split (``probe_data="probe"``), or
    (``"train"``, the authors' public code's choice) ``probe_train_samples`` training samples
    drawn once from the run's seed without replacement, in index order, so that every probe of
    the run reads the same samples and successive probes differ only by training."""
    if config.probe_data == "probe":
        return data.splits["probe"]
    train = data.splits["train"]
    n = len(train)
    size = min(n, config.probe_train_samples)
    idx = np.sort(np.random.default_rng([config.seed, 1280]).choice(n, size, replace=False))
    return Subset(train, idx.tolist())


def _validate_against_data(config: RunConfig, data: MultimodalData) -> None:
    n_probe = len(probe_dataset(config, data))
    what = "probe split" if config.probe_data == "probe" else "training probe subset"
    if config.method in ("pid", "mi") and config.k is not None and config.k > n_probe:
        raise ValueError(f"config.k: k={config.k} clusters need at least {config.k} probe samples, "
                         f"but the {what} has {n_probe}; lower k or enlarge the {what}")
    if not config.joint_from_scratch and config.method != "unimodal" and config.stage2_epochs < 1:
        raise ValueError(f"config.stage2_epochs must be >= 1 for method {config.method!r}")
    if config.joint_from_scratch and config.joint_epochs < 1:
        raise ValueError(f"config.joint_epochs must be >= 1 for method {config.method!r}")
    if config.method == "unimodal" and config.unimodal_epochs < 1:
        raise ValueError("config.unimodal_epochs must be >= 1 for method 'unimodal'")
    if len(data.splits["train"]) < 2:
        raise ValueError("the train split needs at least 2 samples")


class _Uni(nn.Module):
    """(encoder, head) as one module so one DDP wrapper syncs both."""

    def __init__(self, enc, head):
        super().__init__()
        self.enc, self.head = enc, head

    def forward(self, x, with_z: bool = False):
        z = self.enc(x)
        return (self.head(z), z) if with_z else self.head(z)


class _Outputs(nn.Module):
    """``JointModel.outputs`` as a forward pass (what DDP wraps in Stage II)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x1, x2) -> JointOutput:
        return self.model.outputs(x1, x2)


class Runner:
    """Stage I under the controller (or a fixed schedule), then Stage II with a strategy; rank-aware."""

    def __init__(self, config: RunConfig, data: MultimodalData, encoders, rundir: RunDir, *, saved_config: dict):
        self.cfg, self.data, self.dir = config, data, rundir
        self.saved_config = saved_config
        self.rank, self.world = D.rank_world()
        self.device = torch.device(config.device)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        C = data.n_classes
        if encoders is not None:
            if not (isinstance(encoders, (tuple, list)) and len(encoders) == 2
                    and all(isinstance(e, nn.Module) for e in encoders)):
                raise TypeError("encoders must be a pair (encoder1, encoder2) of torch.nn.Module")
            encs = [copy.deepcopy(e) for e in encoders]
            self._given_encoders = [copy.deepcopy(e) for e in encoders]
        else:
            self._given_encoders = None
            encs = [_make_encoder(config, tuple(data.sample(m).shape[1:])) for m in (1, 2)]
        dims = [infer_out_dim(e.to(self.device), data.sample(m), name=f"encoder{m}")
                for m, e in zip((1, 2), encs)]
        if config.projection_dim is not None:   # paper section 5.2: a 64-d projection on each encoder
            encs = [Projected(e, d, config.projection_dim).to(self.device) for e, d in zip(encs, dims)]
            dims = [config.projection_dim] * 2
        self.strategy_name, strategy_options = config.strategy_spec()
        if self.strategy_name == "mla":   # one head shared by both modalities, entropy-weighted fusion
            if dims[0] != dims[1]:
                raise ValueError(f"mla shares one head between the modalities, so both embeddings need one "
                                 f"width; encoder1 gives {dims[0]}, encoder2 {dims[1]}")
            head = nn.Linear(dims[0], C)
            heads, fusion = [head, head], MLAFusion(head)
        else:
            heads = [nn.Linear(d, C) for d in dims]
            fusion = FUSIONS[config.fusion](dims[0], dims[1], C)
        self.model = JointModel(encs[0], encs[1], heads[0], heads[1], fusion).to(self.device)
        self.gens = {k: torch.Generator().manual_seed(config.seed * 1000 + i)
                     for i, k in enumerate(("m1", "m2", "joint"))}
        n = len(data.splits["train"])
        drop = n > config.batch_size
        self.samplers = {k: D.ShardedBatchSampler(n, config.batch_size, generator=g, drop_last=drop,
                                                  rank=self.rank, world=self.world) for k, g in self.gens.items()}
        # generator= also feeds the loader's per-iterator base seed, as DataLoader(shuffle=True) does
        self.loaders = {k: DataLoader(data.splits["train"], batch_sampler=s, generator=self.gens[k])
                        for k, s in self.samplers.items()}
        self.eval_loaders = {}
        self.probe_set = probe_dataset(config, data)
        for s in ("val", "probe", "test"):
            ds = self.probe_set if s == "probe" else data.splits[s]
            idx = list(range(self.rank, len(ds), self.world))
            self.eval_loaders[s] = DataLoader(Subset(ds, idx), batch_size=256, shuffle=False)
        opt = dict(name=config.optimizer, momentum=config.momentum, weight_decay=config.weight_decay)
        self.opts = {f"m{m}": make_optimizer(list(encs[m - 1].parameters()) + list(heads[m - 1].parameters()),
                                             lr=config.lr_stage1, **opt) for m in (1, 2)}
        self.opt_joint = None
        self.strategy = get_strategy(self.strategy_name, **strategy_options)
        self.schedule = None
        if config.method in SCHEDULE_METHODS:
            from .schedules import get_schedule
            self.schedule = get_schedule(config.method, **config.method_options)
            self.schedule.setup(max_epochs=config.max_unimodal_epochs)
        self.strategy_ready = False
        self.controller = None
        if config.method in ("pid", "mi"):
            self.controller = Controller(
                tau_u=config.tau_u, lambda_s=config.lambda_s, probe_every=config.probe_every,
                max_unimodal_epochs=config.max_unimodal_epochs, max_switches=config.max_switches,
                max_modality_epochs=config.max_modality_epochs, eps=config.eps,
                signal="pid" if config.method == "pid" else "mi", when_balanced=config.when_balanced,
                start_modality=config.start_modality, decision_rule=config.decision_rule,
                confirm_probes=config.confirm_probes, first_probes=tuple(config.first_probes),
                stop_after_switches=config.stop_after_switches, val_patience=config.val_patience,
                val_min_delta=config.val_min_delta)
        self.uni_nets = {m: _Uni(getattr(self.model, f"encoder{m}"), getattr(self.model, f"head{m}")) for m in (1, 2)}
        self.joint_net = _Outputs(self.model)
        if self.world > 1:
            kw = {} if self.device.type == "cpu" else {"device_ids": [self.device]}
            self.uni_nets = {m: D.DDP(net, **kw) for m, net in self.uni_nets.items()}
            self._ddp_kw = kw
            self.joint_net = None   # wrapped when Stage II starts (its parameters are all trained then)
        self._cache = {}            # modality -> (modality_epochs, embeddings, labels)
        # progress state
        self.phase = "stage2" if config.joint_from_scratch else "stage1"
        self.stage1_epoch = 0
        self.stage2_epoch = 0
        self.modality_epochs = [0, 0]
        self.best = {}            # key -> {"val": acc, "epoch": e}
        self.best_test = {}       # key -> {"test": acc, "epoch": e} (config.track_test; reporting only)
        self.keep = {1: set(), 2: set()}   # Stage I epochs whose encoder + head are kept (run(keep_stage1=))
        self.probes = []
        self.restored = []        # modalities sent back to their best-val weights (val_patience)
        self.fallback = None      # the fallback comparison, once made
        self.session_epochs = 0
        self.interrupt_after = None

    # ---------------------------------------------------------- checkpoints
    def save(self) -> None:
        self.dir.save_checkpoint({
            "config": self.saved_config,
            "phase": self.phase, "stage1_epoch": self.stage1_epoch, "stage2_epoch": self.stage2_epoch,
            "modality_epochs": list(self.modality_epochs), "best": copy.deepcopy(self.best),
            "best_test": copy.deepcopy(self.best_test), "probes": self.probes,
            "restored": list(self.restored), "fallback": self.fallback,
            "model": self.model.state_dict(),
            "opts": {k: o.state_dict() for k, o in self.opts.items()},
            "opt_joint": self.opt_joint.state_dict() if self.opt_joint is not None else None,
            "controller": self.controller.state_dict() if self.controller is not None else None,
            "strategy": self.strategy.state_dict() if self.strategy_ready else None,
            **({"schedule": self.schedule.state_dict()} if self.schedule is not None else {}),
            "rng": _rng_state(self.gens),
        })
        D.barrier()

    def load(self, st: dict) -> None:
        """Continue from a checkpoint state (already verified by :meth:`RunDir.check_resume`)."""
        self.phase, self.stage1_epoch, self.stage2_epoch = st["phase"], st["stage1_epoch"], st["stage2_epoch"]
        self.modality_epochs, self.best = st["modality_epochs"], st["best"]
        self.best_test = st.get("best_test", {})
        self.probes = st["probes"]
        self.restored, self.fallback = list(st.get("restored", [])), st.get("fallback")
        self.model.load_state_dict(st["model"])
        for k, o in self.opts.items():
            o.load_state_dict(st["opts"][k])
        if st["opt_joint"] is not None:
            self._start_stage2()
            self.opt_joint.load_state_dict(st["opt_joint"])
            self.strategy.load_state_dict(st["strategy"] or {})
        if self.controller is not None and st["controller"] is not None:
            self.controller.load_state_dict(st["controller"])
        if self.schedule is not None:
            self.schedule.load_state_dict(st["schedule"])
        _set_rng_state(st["rng"], self.gens)
        self.dir.trim_events(st["n_events"])
        D.barrier()   # nobody appends events before every rank has read the checkpoint
        log.info("resumed %s at phase=%s stage1_epoch=%d stage2_epoch=%d", self.dir.path, self.phase,
                 self.stage1_epoch, self.stage2_epoch)

    def _save_best(self, key: str, val: float, epoch: int, modules: dict, *, force: bool = False) -> None:
        b = self.best.get(key)
        if force or b is None or val > b["val"]:
            self.best[key] = {"val": val, "epoch": epoch}
            self.dir.save_best(key, {n: copy.deepcopy(m.state_dict()) for n, m in modules.items()})

    def _track_test(self, key: str, epoch: int, m: int | None = None) -> float:
        """Test accuracy after an epoch, kept per ``key`` at its best (reporting only, never selection)."""
        acc = self._eval("test", m)["acc"]
        b = self.best_test.get(key)
        if b is None or acc > b["test"]:
            self.best_test[key] = {"test": acc, "epoch": epoch}
        return acc

    def _keep_stage1(self, m: int) -> None:
        """``stage1/m{m}_e{epoch}.pt``: modality ``m``'s encoder and head when it reaches a kept epoch."""
        e = self.modality_epochs[m - 1]
        if e in self.keep[m] and self.rank == 0:
            os.makedirs(self.dir.file("stage1"), exist_ok=True)
            torch.save({n: mod.state_dict() for n, mod in self._uni_modules(m).items()},
                       self.dir.file("stage1", f"m{m}_e{e:04d}.pt"))

    def apply_start(self, start: dict) -> None:
        """Start Stage I from kept encoders and heads: ``{"modality_epochs": [e1, e2], "state":
        {"encoder1", "head1", "encoder2", "head2": state_dict}}`` (a grid start point)."""
        cfg = self.cfg
        if cfg.method != "schedule":
            raise ValueError(f"run(start=...) continues a fixed schedule; use method 'schedule', got {cfg.method!r}")
        if not (isinstance(start, dict) and {"modality_epochs", "state"} <= set(start)):
            raise ValueError("start must be a dict with 'modality_epochs' [e1, e2] and 'state' "
                             "{'encoder1', 'head1', 'encoder2', 'head2': state_dict}")
        eps = list(start["modality_epochs"])
        if len(eps) != 2 or any(not isinstance(e, int) or e < 0 or e > s for e, s in zip(eps, cfg.schedule_epochs)):
            raise ValueError(f"start['modality_epochs'] must be two integers within schedule_epochs "
                             f"{cfg.schedule_epochs}, got {start['modality_epochs']!r}")
        missing = sorted({"encoder1", "head1", "encoder2", "head2"} - set(start["state"]))
        if missing:
            raise ValueError(f"start['state'] lacks {missing}")
        for name in ("encoder1", "head1", "encoder2", "head2"):
            getattr(self.model, name).load_state_dict(start["state"][name])
        self.modality_epochs = eps

    def _uni_modules(self, m: int) -> dict:
        return {"encoder": getattr(self.model, f"encoder{m}"), "head": getattr(self.model, f"head{m}")}

    def _restore_best_uni(self, m: int) -> None:
        """Reload modality ``m``'s best-val encoder and head (every rank reads best.pt after a barrier)."""
        best = self.dir.load_best()[f"m{m}"]
        for name, mod in self._uni_modules(m).items():
            mod.load_state_dict(best[name])

    def _tick(self) -> None:
        self.save()
        self.session_epochs += 1
        if self.interrupt_after is not None and self.session_epochs >= self.interrupt_after:
            raise RunInterrupted(f"interrupted after {self.session_epochs} epoch(s); "
                                 f"resume with --resume {self.dir.path}")

    # ------------------------------------------------------------ train / eval
    def _autocast(self):
        """bfloat16 autocast for the training forward pass when ``amp`` (no loss scaling needed)."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp)

    def _weighted(self, loss: torch.Tensor, n_local: int, global_size: int) -> torch.Tensor:
        """The shard's mean loss weighted so DDP's average is the global batch mean."""
        return loss if self.world == 1 else loss * (n_local * self.world / global_size)

    def _train_uni(self, m: int) -> dict:
        net, opt = self.uni_nets[m], self.opts[f"m{m}"]
        set_lr(opt, step_lr(self.cfg.lr_stage1, self.modality_epochs[m - 1], self.cfg.lr_step_epochs,
                            self.cfg.lr_gamma))
        net.train()
        sizes = self.samplers[f"m{m}"].global_sizes()
        guide = self.schedule.guidance(m) if self.schedule is not None else None
        if guide is not None:   # the anchor encoder is frozen: eval mode, no gradient, outside DDP
            anchor, lam = guide
            anchor_enc = getattr(self.model, f"encoder{anchor}")
            anchor_was = anchor_enc.training
            anchor_enc.eval()
        tot, correct, n = 0.0, 0, 0
        for b, batch in enumerate(self.loaders[f"m{m}"]):
            x, y = batch[m - 1].to(self.device), batch[2].to(self.device)
            with self._autocast():
                if guide is None:
                    logits = net(x).float()
                else:
                    logits, z = net(x, with_z=True)
                    logits = logits.float()
            loss = F.cross_entropy(logits, y)
            if guide is not None:
                with torch.no_grad(), self._autocast():
                    za = anchor_enc(batch[anchor - 1].to(self.device))
                loss = loss + lam * self.schedule.guidance_loss(z.float(), za.float())
            _check_loss(loss, f"Stage I modality {m}")
            opt.zero_grad(set_to_none=True)
            self._weighted(loss, len(y), sizes[b]).backward()
            opt.step()
            tot += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        if guide is not None:
            anchor_enc.train(anchor_was)
        D.sync_buffers(getattr(self.model, f"encoder{m}"))
        D.sync_buffers(getattr(self.model, f"head{m}"))
        tot, correct, n = D.all_sum([tot, correct, n], self.device)
        out = {"loss": tot / n, "acc": correct / n}
        if guide is not None:
            out["guide_weight"] = lam
        return out

    @torch.no_grad()
    def _eval(self, split: str, m: int | None = None, model: JointModel | None = None) -> dict:
        """Loss and accuracy on a split: the joint model's (``m=None``, with each head's) or one modality's."""
        model = model or self.model
        was = model.training
        model.eval()
        tot, c, c1, c2, t1, t2, n = 0.0, 0, 0, 0, 0.0, 0.0, 0
        for x1, x2, y in self.eval_loaders[split]:
            x1, x2, y = x1.to(self.device), x2.to(self.device), y.to(self.device)
            if m is None:
                fused, l1, l2 = model(x1, x2)
                c1 += (l1.argmax(1) == y).sum().item()
                c2 += (l2.argmax(1) == y).sum().item()
                t1 += F.cross_entropy(l1, y, reduction="sum").item()
                t2 += F.cross_entropy(l2, y, reduction="sum").item()
            else:
                fused = getattr(model, f"head{m}")(getattr(model, f"encoder{m}")(x1 if m == 1 else x2))
            tot += F.cross_entropy(fused, y, reduction="sum").item()
            c += (fused.argmax(1) == y).sum().item()
            n += len(y)
        model.train(was)
        tot, c, c1, c2, t1, t2, n = D.all_sum([tot, c, c1, c2, t1, t2, n], self.device)
        return {"loss": tot / n, "acc": c / n, "acc1": c1 / n, "acc2": c2 / n, "loss1": t1 / n, "loss2": t2 / n}

    def _start_stage2(self) -> None:
        cfg = self.cfg
        lr = cfg.lr_stage1 if cfg.joint_from_scratch else cfg.lr_stage2
        self.opt_joint = make_optimizer(self.model.parameters(), name=cfg.optimizer, lr=lr,
                                        momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        if self.joint_net is None:
            # a strategy's loss may leave parts of the model out (concat, ogm-ge, pmr and agm the unimodal
            # heads, mla the idle encoder, gblending a classifier weighted 0): DDP must look for them
            self.joint_net = D.DDP(_Outputs(self.model), find_unused_parameters=True, **self._ddp_kw)
        epochs = cfg.joint_epochs if cfg.joint_from_scratch else cfg.stage2_epochs
        self.strategy.setup(self.model, n_classes=self.data.n_classes, epochs=epochs)
        self.strategy_ready = True

    def _train_joint(self) -> dict:
        cfg, s = self.cfg, self.strategy
        base = cfg.lr_stage1 if cfg.joint_from_scratch else cfg.lr_stage2
        set_lr(self.opt_joint, step_lr(base, self.stage2_epoch - 1, cfg.lr_step_epochs, cfg.lr_gamma))
        net = self.joint_net
        net.train()
        s.on_epoch_start(self.stage2_epoch, self.model)
        sizes = self.samplers["joint"].global_sizes()
        tot, correct, n, tf, t1, t2 = 0.0, 0, 0, 0.0, 0.0, 0.0
        for b, (x1, x2, y) in enumerate(self.loaders["joint"]):
            x1, x2, y = x1.to(self.device), x2.to(self.device), y.to(self.device)
            with self._autocast():
                out = net(x1, x2)
            out = JointOutput(*(t.float() for t in out))
            loss = s.loss(out, y, self.model)
            _check_loss(loss, "Stage II")
            self.opt_joint.zero_grad(set_to_none=True)
            self._weighted(loss, len(y), sizes[b]).backward()
            s.after_backward(self.model, out, y)
            self.opt_joint.step()
            tot += loss.item() * len(y)
            correct += (out.fused.argmax(1) == y).sum().item()
            n += len(y)
            with torch.no_grad():   # each classifier's training cross-entropy (G-Blending reads them)
                tf += F.cross_entropy(out.fused, y, reduction="sum").item()
                t1 += F.cross_entropy(out.logits1, y, reduction="sum").item()
                t2 += F.cross_entropy(out.logits2, y, reduction="sum").item()
        D.sync_buffers(self.model)
        tot, correct, n, tf, t1, t2 = D.all_sum([tot, correct, n, tf, t1, t2], self.device)
        return {"loss": tot / n, "acc": correct / n, "loss_fused": tf / n, "loss1": t1 / n, "loss2": t2 / n}

    # ------------------------------------------------------------------- probe
    def _embed(self, m: int) -> tuple:
        """Probe embeddings of encoder ``m`` (all ranks' shards, in order); cached while it is paused."""
        key = self.modality_epochs[m - 1]
        hit = self._cache.get(m)
        if self.cfg.probe_cache and hit is not None and hit[0] == key:
            return hit[1], hit[2]
        z, y = probing.embed_labeled(getattr(self.model, f"encoder{m}"), self.eval_loaders["probe"], m)
        z, y = D.gather_strided(z, y.astype(np.int64), len(self.probe_set))
        if self.cfg.probe_cache:
            self._cache[m] = (key, z, y)
        return z, y

    def do_probe(self) -> dict:
        cfg = self.cfg
        (z1, y), (z2, _) = self._embed(1), self._embed(2)
        if cfg.probe_cache:
            self.dir.save_arrays(f"epoch_{self.stage1_epoch:04d}", z1=z1, z2=z2, y=y,
                                 modality_epochs=np.array(self.modality_epochs))
        obs = None
        if self.rank == 0:   # one PID per probe, broadcast: every rank's controller decides alike
            est = probing.probe_estimate(z1, z2, y, k=cfg.k, pca_dims=cfg.pca_dims, seed=cfg.seed,
                                         binning=cfg.binning, pid_method=cfg.pid_method, n_boot=cfg.probe_boot,
                                         bias_correction=cfg.probe_bias_correction,
                                         confidence=cfg.probe_confidence)
            obs = probing.observation(est, signal="pid" if cfg.method == "pid" else "mi")
        return D.broadcast_obj(obs)

    # ------------------------------------------------------------- stage I
    def stage1_plan(self):
        """Modalities to train in the next Stage I epoch, or None when Stage I is over."""
        cfg = self.cfg
        if cfg.method in ("pid", "mi"):
            return None if self.controller.finished else self.controller.decision.modalities
        if self.schedule is not None:
            return self.schedule.plan()
        if cfg.method == "unimodal":
            return (1, 2) if self.stage1_epoch < cfg.unimodal_epochs else None
        e1, e2 = cfg.schedule_epochs
        mods = tuple(m for m, e in ((1, e1), (2, e2)) if self.modality_epochs[m - 1] < e)
        return mods or None

    def _probe_and_decide(self) -> None:
        """Probe, let the controller decide, log the decision; act on rollback / val restores."""
        cfg, ctl = self.cfg, self.controller
        obs = self.do_probe()
        dec = ctl.observe(obs, self.stage1_epoch)
        rec = {"epoch": self.stage1_epoch, "modality_epochs": list(self.modality_epochs),
               "probe_data": cfg.probe_data, "n_probe": len(self.probe_set), **obs,
               "decision": dec.to_dict(), "reason": dec.reason}
        self.probes.append(rec)
        self.dir.event({"type": "probe", **rec})
        log.info("probe at Stage I epoch %d: %s -> [%s] %s", self.stage1_epoch,
                 {k: round(v, 4) for k, v in obs.items() if isinstance(v, float)}, dec.rule, dec.reason)
        if cfg.rollback and ctl.peak_epoch == self.stage1_epoch and not dec.start_joint:
            self._save_best("peak", 0.0, self.stage1_epoch,
                            {f"{n}{m}": mod for m in (1, 2) for n, mod in self._uni_modules(m).items()}, force=True)
        if cfg.val_restore:
            for m in (1, 2):
                if ctl.stalled[m - 1] and m not in self.restored and f"m{m}" in self.best:
                    self._restore_best_uni(m)
                    self.restored.append(m)
                    self.dir.event({"type": "restore", "epoch": self.stage1_epoch, "modality": m,
                                    "rule": "val_patience", "best_val": self.best[f"m{m}"]["val"],
                                    "best_epoch": self.best[f"m{m}"]["epoch"]})
        if dec.start_joint and cfg.rollback and dec.rule == "synergy_peak" and "peak" in self.best:
            peak = self.dir.load_best()["peak"]
            for m in (1, 2):
                for n, mod in self._uni_modules(m).items():
                    mod.load_state_dict(peak[f"{n}{m}"])
            self.dir.event({"type": "rollback", "epoch": self.stage1_epoch, "to_epoch": self.best["peak"]["epoch"],
                            "rule": "synergy_peak"})

    def run_stage1(self, bar) -> None:
        cfg = self.cfg
        if self.stage1_epoch == 0:
            for m in (1, 2):
                self._keep_stage1(m)
        if self.controller is not None and self.stage1_epoch == 0 and not self.probes and self.controller.due(0):
            self._probe_and_decide()   # the untrained encoders
            self.save()
        while True:
            if self.schedule is not None:   # a modality that finished: back to its best-val weights
                for m in self.schedule.pop_restores():
                    self._restore_best_uni(m)
            mods = self.stage1_plan()
            if mods is None:
                break
            self.stage1_epoch += 1
            ev = {"type": "epoch", "phase": "stage1", "epoch": self.stage1_epoch}
            for m in mods:
                tr = self._train_uni(m)
                va = self._eval("val", m)
                self.modality_epochs[m - 1] += 1
                self._keep_stage1(m)
                ev[f"m{m}"] = {"train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": va["loss"],
                               "val_acc": va["acc"], "modality_epoch": self.modality_epochs[m - 1]}
                if cfg.track_test and cfg.method == "unimodal":
                    ev[f"m{m}"]["test_acc"] = self._track_test(f"m{m}", self.stage1_epoch, m)
                if "guide_weight" in tr:
                    ev[f"m{m}"]["guide_weight"] = tr["guide_weight"]
                if cfg.method == "unimodal":
                    self._save_best(f"m{m}", va["acc"], self.stage1_epoch, self._uni_modules(m))
                if self.controller is not None:
                    self.controller.record_val(m, va["acc"])
                    if cfg.val_restore and cfg.val_patience is not None:
                        self._save_best(f"m{m}", va["acc"], self.stage1_epoch, self._uni_modules(m))
                if self.schedule is not None and self.schedule.observe(m, va["acc"]):
                    self._save_best(f"m{m}", va["acc"], self.stage1_epoch, self._uni_modules(m), force=True)
            ev["modality_epochs"] = list(self.modality_epochs)
            if self.schedule is not None:
                ev["schedule"] = self.schedule.describe()
            self.dir.event(ev)
            bar.update(1)
            bar.set_postfix({f"val{m}": f"{ev[f'm{m}']['val_acc']:.3f}" for m in mods})
            if self.controller is not None and self.controller.due(self.stage1_epoch):
                self._probe_and_decide()
            self._tick()
        self.phase = "done" if cfg.method == "unimodal" else "stage2"
        if self.phase == "stage2":
            self.dir.event({"type": "stage2_start", "stage1_epoch": self.stage1_epoch,
                            "modality_epochs": list(self.modality_epochs)})
        self.save()

    # ------------------------------------------------------------ stage II
    def run_stage2(self, bar) -> None:
        cfg = self.cfg
        n = cfg.joint_epochs if cfg.joint_from_scratch else cfg.stage2_epochs
        if self.opt_joint is None:
            self._start_stage2()
        while self.stage2_epoch < n:
            self.stage2_epoch += 1
            tr = self._train_joint()
            va = self._eval("val")
            ev = {"type": "epoch", "phase": "stage2", "epoch": self.stage2_epoch, "train_loss": tr["loss"],
                  "train_acc": tr["acc"], "val_loss": va["loss"], "val_acc": va["acc"], "val_acc1": va["acc1"],
                  "val_acc2": va["acc2"], "train_loss_fused": tr["loss_fused"], "train_loss_1": tr["loss1"],
                  "train_loss_2": tr["loss2"], "val_loss_fused": va["loss"], "val_loss_1": va["loss1"],
                  "val_loss_2": va["loss2"]}
            if cfg.track_test:
                ev["test_acc"] = self._track_test("joint", self.stage2_epoch)
            self.strategy.on_epoch_end(self.stage2_epoch, {k: v for k, v in ev.items() if k not in ("type", "phase")})
            self.dir.event(ev)
            self._save_best("joint", va["acc"], self.stage2_epoch, {"model": self.model})
            bar.update(1)
            bar.set_postfix(val=f"{va['acc']:.3f}")
            self._tick()
        self.phase = "done"
        self.save()

    # ------------------------------------------------------------ fallback
    @torch.no_grad()
    def _val_correct(self, model: JointModel) -> np.ndarray:
        """Per-sample correctness (bool, val order) of ``model``'s fused prediction on the whole val split."""
        was = model.training
        model.eval()
        out = []
        for x1, x2, y in DataLoader(self.data.splits["val"], batch_size=256, shuffle=False):
            out.append((model(x1.to(self.device), x2.to(self.device))[0].argmax(1).cpu() == y).numpy())
        model.train(was)
        return np.concatenate(out)

    def _fallback(self, scheduled: JointModel) -> tuple:
        """Plain joint training (method ``joint``, same Stage II strategy) in ``RUN_DIR/fallback``; keep it
        instead of the scheduled model when it is right on clearly more val samples (``fallback_rule``
        "worse"), or unless the scheduled model is (``"not-better"``; paired test either way)."""
        cfg = self.cfg
        sub = os.path.join(self.dir.path, "fallback")
        sub_cfg = cfg.replace(method="joint", out=sub, fallback=False, plots=False, progress=False)
        if os.path.exists(os.path.join(sub, "result.json")):   # a resumed run: reuse the finished one
            joint_epoch = RunDir(sub).load_checkpoint()["best"]["joint"]["epoch"]
        else:
            joint_epoch = run(sub_cfg, data=self.data, encoders=self._given_encoders,
                              overwrite=True).selected["epoch"]
        fb_model = copy.deepcopy(scheduled)
        fb_model.load_state_dict(torch.load(os.path.join(sub, "checkpoints", "best.pt"),
                                            weights_only=False, map_location="cpu")["joint"]["model"])
        fb_model.to(self.device)
        a, b_ = self._val_correct(scheduled), self._val_correct(fb_model)
        b = int((a & ~b_).sum())    # only the scheduled model right
        c = int((~a & b_).sum())    # only plain joint training right
        fell = falls_back(b, c, cfg.fallback_z, cfg.fallback_rule)
        self.fallback = {"rule": "fallback", "scheduled_val": float(a.mean()), "joint_val": float(b_.mean()),
                         "only_scheduled_right": b, "only_joint_right": c, "fallback_z": cfg.fallback_z,
                         "fallback_rule": cfg.fallback_rule,
                         "threshold": float(cfg.fallback_z * np.sqrt(b + c)), "fell_back": fell,
                         "joint_epoch": int(joint_epoch), "run_dir": "fallback"}
        self.dir.event({"type": "fallback", **self.fallback})
        log.info("fallback check: %s", self.fallback)
        return fb_model, self.fallback

    # -------------------------------------------------------------- finish
    def finish(self, t0: float) -> RunResult:
        cfg = self.cfg
        best = self.dir.load_best()   # every rank reads it (written before the last barrier)
        unimodal = {}
        if cfg.method == "unimodal":
            for m in (1, 2):
                model = copy.deepcopy(self.model)
                getattr(model, f"encoder{m}").load_state_dict(best[f"m{m}"]["encoder"])
                getattr(model, f"head{m}").load_state_dict(best[f"m{m}"]["head"])
                te = self._eval("test", m, model)
                unimodal[str(m)] = {"val_accuracy": self.best[f"m{m}"]["val"], "epoch": self.best[f"m{m}"]["epoch"],
                                    "test_accuracy": te["acc"]}
                if f"m{m}" in self.best_test:
                    unimodal[str(m)]["test_best_epoch"] = {"accuracy": self.best_test[f"m{m}"]["test"],
                                                           "epoch": self.best_test[f"m{m}"]["epoch"]}
            m = 1 if unimodal["1"]["val_accuracy"] >= unimodal["2"]["val_accuracy"] else 2
            sel = {"phase": "unimodal", "modality": m, "epoch": unimodal[str(m)]["epoch"]}
            test, val = unimodal[str(m)]["test_accuracy"], unimodal[str(m)]["val_accuracy"]
            best_test = unimodal[str(m)].get("test_best_epoch")
            model = None
        else:
            model = copy.deepcopy(self.model)
            model.load_state_dict(best["joint"]["model"])
            val = self.best["joint"]["val"]
            sel = {"phase": "stage2", "epoch": self.best["joint"]["epoch"]}
            if cfg.fallback and cfg.method in ("pid", "mi"):
                fb_model, fb = self._fallback(model)
                if fb["fell_back"]:
                    model, val = fb_model, fb["joint_val"]
                    sel = {"phase": "fallback", "epoch": fb["joint_epoch"], "run_dir": "fallback"}
            te = self._eval("test", None, model)
            sel.update({"test_acc_head1": te["acc1"], "test_acc_head2": te["acc2"]})
            test = te["acc"]
            b = self.best_test.get("joint")
            best_test = None if b is None or sel["phase"] == "fallback" else {"accuracy": b["test"], "epoch": b["epoch"]}
        res = RunResult(method=cfg.method, dataset=self.data.name, seed=cfg.seed, test_accuracy=test,
                        val_accuracy=val, selected=sel, stage1_epochs=list(self.modality_epochs),
                        unimodal=unimodal, probes=self.probes, run_dir=self.dir.path, fallback=self.fallback,
                        wall_time_s=time.time() - t0, test_best_epoch=best_test,
                        model=model if self.rank == 0 else None)
        self.dir.event({"type": "result", **{k: v for k, v in res.to_dict().items() if k != "probes"}})
        self.dir.write_result(res.to_dict())
        if cfg.plots and self.rank == 0:
            from .plots import plot_run
            plot_run(self.dir.path)
        D.barrier()
        return res


# ----------------------------------------------------------------------- entry point
def _default_out(config: RunConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{config.dataset}-{config.method}-s{config.seed}-{stamp}")


def _as_config(config) -> RunConfig:
    if config is None:
        return RunConfig()
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return RunConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return load_config(os.fspath(config))
    raise TypeError(f"config must be a RunConfig, a dict, a path or None, got {type(config).__name__}")


def _on_rank0(fn):
    """Run ``fn`` on rank 0 only; its ValueError (or result) reaches every rank."""
    out, err = None, None
    if D.rank_world()[0] == 0:
        try:
            out = fn()
        except ValueError as e:
            err = str(e)
    err, out = D.broadcast_obj((err, out))
    if err is not None:
        raise RunDirError(err)
    return out


def run(config: RunConfig | dict | str | None = None, data=None, encoders=None, *,
        resume: str | None = None, interrupt_after: int | None = None, overwrite: bool = False,
        start: dict | None = None, keep_stage1: dict | None = None) -> RunResult:
    """Train under ``config`` and return a :class:`RunResult` (one process or every rank of torchrun).

    config : a :class:`RunConfig`, a dict, or a path to a JSON/YAML file.
        With ``resume`` it may be None (the run directory's config.json is used).
    data : optional users' data (see :func:`multimodal_sched.data.as_multimodal_data`):
        ``{"train": (x1, x2, y), "val": ..., "test": ..., "probe": ...}`` with
        arrays/tensors or torch Datasets; replaces ``config.dataset``.
    encoders : optional pair of ``nn.Module`` mapping each modality to a 2-D
        embedding; widths are inferred by a dry forward pass.  They are copied,
        the trained joint model is ``RunResult.model`` (rank 0).
    resume : a run directory to continue from its last epoch-boundary checkpoint;
        the result equals an uninterrupted run (same data and encoders needed).
    interrupt_after : stop with :class:`RunInterrupted` after that many epochs
        in this call (the state is checkpointed first); for testing resume.
    overwrite : replace the files of an earlier run in ``config.out``.
    start : method ``schedule`` only: begin from kept encoders and heads, ``{"modality_epochs":
        [e1, e2], "state": {"encoder1", "head1", "encoder2", "head2": state_dict}}``; Stage I then
        trains only up to ``schedule_epochs`` (none when they are equal: Stage II starts at once).
        Stage I optimizers start fresh.  With the same seed the result equals the uninterrupted
        ``schedule`` run (this is how :func:`multimodal_sched.grid` reuses one trajectory).
    keep_stage1 : ``{1: [epochs], 2: [epochs]}``: save modality m's encoder and head to
        ``RUN_DIR/stage1/m{m}_e{epoch:04d}.pt`` when it has trained that many Stage I epochs (0: the
        initial weights).

    Under torchrun (``WORLD_SIZE > 1``) the process group is created from the environment
    (gloo on CPU, nccl on CUDA) when not yet initialized and kept for later runs in the process.
    Everything is validated before the first epoch.
    """
    t0 = time.time()
    if resume is not None:
        checked = {}

        def check():
            cfg_dict, checked["state"] = RunDir(resume).check_resume()
            return cfg_dict

        saved_dict = _on_rank0(check)
        saved = RunConfig.from_dict(saved_dict)
        if config is not None:
            cfg = _as_config(config)
            if cfg.replace(out=resume, progress=saved.progress).to_dict() != saved.replace(out=resume).to_dict():
                raise ValueError(f"config differs from the one saved in {resume!r}; resume with config=None")
        config = saved.replace(out=resume)
    else:
        config = _as_config(config)
    # with users' data the dataset / data_path fields do not apply
    (config if data is None else config.replace(dataset="cg-digits", data_path=None)).validate()
    device = config.device
    if D.launched_by_torchrun():
        _, _, device = D.init_process_group(config.device)
    rank, world = D.rank_world()
    mdata, paper_encoders = build_dataset(config, data)
    encoders = encoders if encoders is not None else paper_encoders
    _validate_against_data(config, mdata)

    if resume is None:
        run_dir = D.broadcast_obj(config.out or _default_out(config))
        config = config.replace(out=run_dir)
        saved_dict = config.to_dict()
        rd = RunDir(run_dir, writer=rank == 0)
        state = None
    else:
        rd = RunDir(resume, writer=rank == 0)
        state = checked.get("state") or rd.load_checkpoint()
    if device != config.device:   # this rank's GPU; config.json keeps what the user wrote
        config = config.replace(device=device)

    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        runner = Runner(config, mdata, encoders, rd, saved_config=saved_dict)   # may refuse the model
        if state is None and start is not None:
            runner.apply_start(start)
        if resume is None:   # the folder is created once the model is known to be buildable
            _on_rank0(lambda: rd.create(saved_dict, overwrite=overwrite))
        runner.interrupt_after = interrupt_after
        if keep_stage1 is not None:
            if not (isinstance(keep_stage1, dict) and set(keep_stage1) <= {1, 2}):
                raise ValueError(f"keep_stage1 must be a dict {{1: [epochs], 2: [epochs]}}, got {keep_stage1!r}")
            runner.keep = {m: {int(e) for e in keep_stage1.get(m, ())} for m in (1, 2)}
        if state is not None:
            runner.load(state)
        res = _execute(runner, config, rank, t0)
    finally:
        torch.set_num_threads(threads)
    return res


def _execute(runner: Runner, config: RunConfig, rank: int, t0: float) -> RunResult:
    from tqdm.auto import tqdm

    show = config.progress and rank == 0
    if runner.phase == "stage1":
        total = {"unimodal": config.unimodal_epochs, "schedule": max(config.schedule_epochs),
                 "sequential": 2 * config.max_unimodal_epochs, "udi": 2 * config.max_unimodal_epochs}.get(
            config.method, config.max_unimodal_epochs)
        with tqdm(total=total, initial=runner.stage1_epoch, desc=f"{config.method} stage I",
                  disable=not show, leave=False) as bar:
            runner.run_stage1(bar)
    if runner.phase == "stage2":
        total = config.joint_epochs if config.joint_from_scratch else config.stage2_epochs
        with tqdm(total=total, initial=runner.stage2_epoch, desc=f"{config.method} stage II",
                  disable=not show, leave=False) as bar:
            runner.run_stage2(bar)
    res = runner.finish(t0)
    log.info("run %s done: test accuracy %.4f (val %.4f) in %.1fs", runner.dir.path, res.test_accuracy,
             res.val_accuracy, res.wall_time_s)
    return res
