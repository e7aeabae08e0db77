"""``run(config, data=None, encoders=None) -> RunResult``: one training run with a run directory.

Run directory layout::

    config.json           the validated config
    events.jsonl          one JSON object a line: every probe and every epoch
    checkpoints/last.pt   full state at the last epoch boundary (for --resume)
    checkpoints/best.pt   weights of the checkpoint selected on the val split
    result.json           the RunResult
    pid_atoms.png         PID atoms over Stage I (methods pid / mi)
    accuracy.png          train / val accuracy curves

Methods: ``pid`` and ``mi`` run Algorithm 1 (controller + probes) then Stage
II; ``schedule`` trains encoder 1 for ``schedule_epochs[0]`` and encoder 2 for
``schedule_epochs[1]`` epochs (in parallel) then Stage II; ``joint`` is naive
joint training from scratch (``joint_epochs`` epochs at ``lr_stage1``);
``unimodal`` trains each encoder with its own head for ``unimodal_epochs``.
Model selection uses the val split only; the test split is evaluated once, on
the selected checkpoint.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader


from . import probing
from .config import RunConfig
from .controller import Controller
from .data import DATASETS, MultimodalData, as_multimodal_data
from .lr_schedule import set_lr, step_lr
from .models import CNN4, MLP, FUSIONS, JointModel, ResNet18, default_encoder, infer_out_dim
from .training import eval_joint, eval_unimodal, make_optimizer, train_joint_epoch, train_unimodal_epoch

__all__ = ["run", "RunResult", "RunInterrupted"]

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
    wall_time_s: float = 0.0
    model: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("model")
        return d


# ------------------------------------------------------------------------ helpers
def _build_data(config: RunConfig, data) -> MultimodalData:
    if data is not None:
        return as_multimodal_data(data)
    if config.dataset == "npz":
        z = np.load(config.data_path)
        splits = {}
        for s in ("train", "val", "probe", "test"):
            if f"y_{s}" in z:
                splits[s] = (z[f"x1_{s}"], z[f"x2_{s}"], z[f"y_{s}"])
        return as_multimodal_data(splits, name=os.path.basename(config.data_path))
    try:
        return DATASETS[config.dataset](seed=config.seed, **config.dataset_options)
    except TypeError as e:
        raise ValueError(f"config.dataset_options {config.dataset_options} do not fit dataset "
                         f"{config.dataset!r}: {e}") from None


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


def _atomic_save(obj, path: str) -> None:
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def _validate_against_data(config: RunConfig, data: MultimodalData) -> None:
    n_probe = len(data.splits["probe"])
    if config.method in ("pid", "mi") and config.k > n_probe:
        raise ValueError(f"config.k: k={config.k} clusters need at least {config.k} probe samples, "
                         f"but the probe split has {n_probe}; lower k or enlarge the probe split")
    if config.method in ("pid", "mi", "schedule") and config.stage2_epochs < 1:
        raise ValueError(f"config.stage2_epochs must be >= 1 for method {config.method!r}")
    if config.method == "joint" and config.joint_epochs < 1:
        raise ValueError("config.joint_epochs must be >= 1 for method 'joint'")
    if config.method == "unimodal" and config.unimodal_epochs < 1:
        raise ValueError("config.unimodal_epochs must be >= 1 for method 'unimodal'")
    if len(data.splits["train"]) < 2:
        raise ValueError("the train split needs at least 2 samples")


# ------------------------------------------------------------------------- runner
class _Runner:
    def __init__(self, config: RunConfig, data: MultimodalData, encoders, run_dir: str):
        self.cfg, self.data, self.dir = config, data, run_dir
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
        else:
            encs = [_make_encoder(config, tuple(data.sample(m).shape[1:])) for m in (1, 2)]
        dims = [infer_out_dim(e.to(self.device), data.sample(m), name=f"encoder{m}")
                for m, e in zip((1, 2), encs)]
        heads = [nn.Linear(d, C) for d in dims]
        fusion = FUSIONS[config.fusion](dims[0], dims[1], C)
        self.model = JointModel(encs[0], encs[1], heads[0], heads[1], fusion).to(self.device)
        self.gens = {k: torch.Generator().manual_seed(config.seed * 1000 + i) for i, k in enumerate(("m1", "m2", "joint"))}
        self.loaders = {k: DataLoader(data.splits["train"], batch_size=config.batch_size, shuffle=True,
                                      generator=g, drop_last=len(data.splits["train"]) > config.batch_size)
                        for k, g in self.gens.items()}
        self.eval_loaders = {s: DataLoader(data.splits[s], batch_size=256, shuffle=False)
                             for s in ("val", "probe", "test")}
        opt = dict(name=config.optimizer, momentum=config.momentum, weight_decay=config.weight_decay)
        self.opts = {
            "m1": make_optimizer(list(encs[0].parameters()) + list(heads[0].parameters()), lr=config.lr_stage1, **opt),
            "m2": make_optimizer(list(encs[1].parameters()) + list(heads[1].parameters()), lr=config.lr_stage1, **opt),
        }
        self.opt_joint = None
        self.controller = None
        if config.method in ("pid", "mi"):
            self.controller = Controller(
                tau_u=config.tau_u, lambda_s=config.lambda_s, probe_every=config.probe_every,
                max_unimodal_epochs=config.max_unimodal_epochs, max_switches=config.max_switches,
                max_modality_epochs=config.max_modality_epochs, eps=config.eps,
                signal="pid" if config.method == "pid" else "mi", when_balanced=config.when_balanced)
        # progress state
        self.phase = "stage2" if config.method == "joint" else "stage1"
        self.stage1_epoch = 0
        self.stage2_epoch = 0
        self.modality_epochs = [0, 0]
        self.best = {}            # key -> {"val": acc, "epoch": e}
        self.n_events = 0
        self.probes = []
        self.session_epochs = 0

    # --------------------------------------------------------------- events
    def event(self, **ev) -> None:
        with open(os.path.join(self.dir, "events.jsonl"), "a") as f:
            f.write(json.dumps(_jsonable(ev)) + "\n")
        self.n_events += 1

    # ---------------------------------------------------------- checkpoints
    def _ckpt_path(self, name):
        return os.path.join(self.dir, "checkpoints", name)

    def save(self) -> None:
        state = {
            "phase": self.phase, "stage1_epoch": self.stage1_epoch, "stage2_epoch": self.stage2_epoch,
            "modality_epochs": list(self.modality_epochs), "best": copy.deepcopy(self.best),
            "n_events": self.n_events, "probes": self.probes,
            "model": self.model.state_dict(),
            "opts": {k: o.state_dict() for k, o in self.opts.items()},
            "opt_joint": self.opt_joint.state_dict() if self.opt_joint is not None else None,
            "controller": self.controller.state_dict() if self.controller is not None else None,
            "rng": _rng_state(self.gens),
        }
        _atomic_save(state, self._ckpt_path("last.pt"))

    def load(self) -> None:
        st = torch.load(self._ckpt_path("last.pt"), weights_only=False)
        self.phase, self.stage1_epoch, self.stage2_epoch = st["phase"], st["stage1_epoch"], st["stage2_epoch"]
        self.modality_epochs, self.best = st["modality_epochs"], st["best"]
        self.probes = st["probes"]
        self.model.load_state_dict(st["model"])
        for k, o in self.opts.items():
            o.load_state_dict(st["opts"][k])
        if st["opt_joint"] is not None:
            self._make_joint_opt()
            self.opt_joint.load_state_dict(st["opt_joint"])
        if self.controller is not None and st["controller"] is not None:
            self.controller.load_state_dict(st["controller"])
        _set_rng_state(st["rng"], self.gens)
        # drop events written after the checkpoint
        path = os.path.join(self.dir, "events.jsonl")
        with open(path) as f:
            lines = f.readlines()[: st["n_events"]]
        with open(path, "w") as f:
            f.writelines(lines)
        self.n_events = len(lines)
        log.info("resumed %s at phase=%s stage1_epoch=%d stage2_epoch=%d", self.dir, self.phase,
                 self.stage1_epoch, self.stage2_epoch)

    def _save_best(self, key: str, val: float, epoch: int, modules: dict) -> None:
        b = self.best.get(key)
        if b is None or val > b["val"]:
            self.best[key] = {"val": val, "epoch": epoch}
            path = self._ckpt_path("best.pt")
            allb = torch.load(path, weights_only=False) if os.path.exists(path) else {}
            allb[key] = {n: copy.deepcopy(m.state_dict()) for n, m in modules.items()}
            _atomic_save(allb, path)

    def _tick(self) -> None:
        self.save()
        self.session_epochs += 1
        if self.interrupt_after is not None and self.session_epochs >= self.interrupt_after:
            raise RunInterrupted(f"interrupted after {self.session_epochs} epoch(s); resume with --resume {self.dir}")

    def _make_joint_opt(self) -> None:
        lr = self.cfg.lr_stage1 if self.cfg.method == "joint" else self.cfg.lr_stage2
        self.opt_joint = make_optimizer(self.model.parameters(), name=self.cfg.optimizer, lr=lr,
                                        momentum=self.cfg.momentum, weight_decay=self.cfg.weight_decay)

    # ---------------------------------------------------------------- probe
    def do_probe(self) -> dict:
        cfg = self.cfg
        z1, z2, y = probing.embed_pair(self.model.encoder1, self.model.encoder2, self.eval_loaders["probe"])
        counts = probing.probe_histogram(z1, z2, y, k=cfg.k, pca_dims=cfg.pca_dims, seed=cfg.seed,
                                         binning=cfg.binning)
        return probing.observe_counts(counts, signal="pid" if cfg.method == "pid" else "mi",
                                      pid_method=cfg.pid_method)

    # ------------------------------------------------------------- stage I
    def stage1_plan(self):
        """Modalities to train in the next Stage I epoch, or None when Stage I is over."""
        cfg = self.cfg
        if cfg.method in ("pid", "mi"):
            return None if self.controller.finished else self.controller.decision.modalities
        if cfg.method == "unimodal":
            return (1, 2) if self.stage1_epoch < cfg.unimodal_epochs else None
        e1, e2 = cfg.schedule_epochs
        mods = tuple(m for m, e in ((1, e1), (2, e2)) if self.modality_epochs[m - 1] < e)
        return mods or None

    def run_stage1(self, bar) -> None:
        cfg = self.cfg
        while True:
            mods = self.stage1_plan()
            if mods is None:
                break
            self.stage1_epoch += 1
            ev = {"type": "epoch", "phase": "stage1", "epoch": self.stage1_epoch}
            for m in mods:
                enc = getattr(self.model, f"encoder{m}")
                head = getattr(self.model, f"head{m}")
                set_lr(self.opts[f"m{m}"], step_lr(cfg.lr_stage1, self.modality_epochs[m - 1], cfg.lr_step_epochs, cfg.lr_gamma))
                tr = train_unimodal_epoch(enc, head, self.opts[f"m{m}"], self.loaders[f"m{m}"], m, self.device)
                va = eval_unimodal(enc, head, self.eval_loaders["val"], m, self.device)
                self.modality_epochs[m - 1] += 1
                ev[f"m{m}"] = {"train_loss": tr["loss"], "train_acc": tr["acc"], "val_loss": va["loss"],
                               "val_acc": va["acc"], "modality_epoch": self.modality_epochs[m - 1]}
                if cfg.method == "unimodal":
                    self._save_best(f"m{m}", va["acc"], self.stage1_epoch, {"encoder": enc, "head": head})
            ev["modality_epochs"] = list(self.modality_epochs)
            self.event(**ev)
            bar.update(1)
            bar.set_postfix({f"val{m}": f"{ev[f'm{m}']['val_acc']:.3f}" for m in mods})
            if self.controller is not None and self.controller.due(self.stage1_epoch):
                obs = self.do_probe()
                dec = self.controller.observe(obs, self.stage1_epoch)
                rec = {"epoch": self.stage1_epoch, "modality_epochs": list(self.modality_epochs), **obs,
                       "decision": dec.to_dict(), "reason": dec.reason}
                self.probes.append(rec)
                self.event(type="probe", **rec)
                log.info("probe at Stage I epoch %d: %s -> %s", self.stage1_epoch,
                         {k: round(v, 4) for k, v in obs.items() if isinstance(v, float)}, dec.reason)
            self._tick()
        self.phase = "done" if cfg.method == "unimodal" else "stage2"
        if self.phase == "stage2":
            self.event(type="stage2_start", stage1_epoch=self.stage1_epoch,
                       modality_epochs=list(self.modality_epochs))
        self.save()

    # ------------------------------------------------------------ stage II
    def run_stage2(self, bar) -> None:
        cfg = self.cfg
        n = cfg.joint_epochs if cfg.method == "joint" else cfg.stage2_epochs
        if self.opt_joint is None:
            self._make_joint_opt()
        while self.stage2_epoch < n:
            self.stage2_epoch += 1
            base = cfg.lr_stage1 if cfg.method == "joint" else cfg.lr_stage2
            set_lr(self.opt_joint, step_lr(base, self.stage2_epoch - 1, cfg.lr_step_epochs, cfg.lr_gamma))
            tr = train_joint_epoch(self.model, self.opt_joint, self.loaders["joint"], self.device, cfg.aux_weight)
            va = eval_joint(self.model, self.eval_loaders["val"], self.device)
            self.event(type="epoch", phase="stage2", epoch=self.stage2_epoch, train_loss=tr["loss"],
                       train_acc=tr["acc"], val_loss=va["loss"], val_acc=va["acc"], val_acc1=va["acc1"],
                       val_acc2=va["acc2"])
            self._save_best("joint", va["acc"], self.stage2_epoch, {"model": self.model})
            bar.update(1)
            bar.set_postfix(val=f"{va['acc']:.3f}")
            self._tick()
        self.phase = "done"
        self.save()

    # -------------------------------------------------------------- finish
    def finish(self, t0: float) -> RunResult:
        cfg = self.cfg
        best = torch.load(self._ckpt_path("best.pt"), weights_only=False)
        unimodal = {}
        if cfg.method == "unimodal":
            for m in (1, 2):
                enc, head = copy.deepcopy(getattr(self.model, f"encoder{m}")), copy.deepcopy(getattr(self.model, f"head{m}"))
                enc.load_state_dict(best[f"m{m}"]["encoder"])
                head.load_state_dict(best[f"m{m}"]["head"])
                te = eval_unimodal(enc, head, self.eval_loaders["test"], m, self.device)
                unimodal[str(m)] = {"val_accuracy": self.best[f"m{m}"]["val"], "epoch": self.best[f"m{m}"]["epoch"],
                                    "test_accuracy": te["acc"]}
            m = 1 if unimodal["1"]["val_accuracy"] >= unimodal["2"]["val_accuracy"] else 2
            sel = {"phase": "unimodal", "modality": m, "epoch": unimodal[str(m)]["epoch"]}
            test, val = unimodal[str(m)]["test_accuracy"], unimodal[str(m)]["val_accuracy"]
            model = None
        else:
            model = copy.deepcopy(self.model)
            model.load_state_dict(best["joint"]["model"])
            te = eval_joint(model, self.eval_loaders["test"], self.device)
            sel = {"phase": "stage2", "epoch": self.best["joint"]["epoch"],
                   "test_acc_head1": te["acc1"], "test_acc_head2": te["acc2"]}
            test, val = te["acc"], self.best["joint"]["val"]
        res = RunResult(method=cfg.method, dataset=self.data.name, seed=cfg.seed, test_accuracy=test,
                        val_accuracy=val, selected=sel, stage1_epochs=list(self.modality_epochs),
                        unimodal=unimodal, probes=self.probes, run_dir=self.dir,
                        wall_time_s=time.time() - t0, model=model)
        self.event(type="result", **{k: v for k, v in res.to_dict().items() if k not in ("probes",)})
        with open(os.path.join(self.dir, "result.json"), "w") as f:
            json.dump(_jsonable(res.to_dict()), f, indent=2)
        if cfg.plots:
            from .plots import plot_run
            plot_run(self.dir)
        return res


def _default_out(config: RunConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{config.dataset}-{config.method}-s{config.seed}-{stamp}")


def run(config: RunConfig | dict | str | None = None, data=None, encoders=None, *,
        resume: str | None = None, interrupt_after: int | None = None) -> RunResult:
    """Train under ``config`` and return a :class:`RunResult`.

    config : a :class:`RunConfig`, a dict, or a path to a JSON/YAML file.
        With ``resume`` it may be None (the run directory's config.json is used).
    data : optional users' data (see :func:`multimodal_sched.data.as_multimodal_data`):
        ``{"train": (x1, x2, y), "val": ..., "test": ..., "probe": ...}`` with
        arrays/tensors or torch Datasets; replaces ``config.dataset``.
    encoders : optional pair of ``nn.Module`` mapping each modality to a 2-D
        embedding; widths are inferred by a dry forward pass.  They are copied,
        the trained joint model is ``RunResult.model``.
    resume : a run directory to continue from its last epoch-boundary checkpoint;
        the result equals an uninterrupted run (same data and encoders needed).
    interrupt_after : stop with :class:`RunInterrupted` after that many epochs
        in this call (the state is checkpointed first); for testing resume.

    Everything is validated before the first epoch.
    """
    from .config import load_config
    from .distributed import launched_by_torchrun, run_scaled

    if launched_by_torchrun():   # every rank of a torchrun job: DistributedDataParallel
        return run_scaled(config, data, encoders, resume=resume, interrupt_after=interrupt_after)
    t0 = time.time()
    if resume is not None:
        cfg_path = os.path.join(resume, "config.json")
        if not os.path.isfile(os.path.join(resume, "checkpoints", "last.pt")) or not os.path.isfile(cfg_path):
            raise ValueError(f"cannot resume {resume!r}: no config.json and checkpoints/last.pt there")
        saved = load_config(cfg_path)
        if config is not None:
            cfg = config if isinstance(config, RunConfig) else (
                RunConfig.from_dict(config) if isinstance(config, dict) else load_config(config))
            if cfg.replace(out=resume, progress=saved.progress).to_dict() != saved.replace(out=resume, progress=saved.progress).to_dict():
                raise ValueError(f"config differs from the one saved in {resume!r}; resume with config=None")
        config = saved.replace(out=resume)
    elif config is None:
        config = RunConfig()
    elif isinstance(config, dict):
        config = RunConfig.from_dict(config)
    elif isinstance(config, str):
        config = load_config(config)
    # with users' data the dataset / data_path fields do not apply
    (config if data is None else config.replace(dataset="cg-digits", data_path=None)).validate()
    from .datasets import REGISTRY, build_dataset

    if data is None and config.dataset in REGISTRY:   # files on disk + the paper's encoders
        mdata, paper_encoders = build_dataset(config)
        encoders = encoders if encoders is not None else paper_encoders
    else:
        mdata = _build_data(config, data)
    _validate_against_data(config, mdata)

    run_dir = config.out or _default_out(config)
    if resume is None:
        if os.path.exists(os.path.join(run_dir, "config.json")):
            raise ValueError(f"run directory {run_dir!r} already holds a run; pass resume={run_dir!r} "
                             "to continue it or choose another out")
        os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
        config = config.replace(out=run_dir)
        with open(os.path.join(run_dir, "config.json"), "w") as f:
            json.dump(config.to_dict(), f, indent=2)
        open(os.path.join(run_dir, "events.jsonl"), "w").close()

    threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        res = _execute(config, mdata, encoders, run_dir, resume, interrupt_after, t0)
    finally:
        torch.set_num_threads(threads)
    return res


def _execute(config, mdata, encoders, run_dir, resume, interrupt_after, t0) -> RunResult:
    if config.probe_cache or config.amp:   # the rank-aware runner, here with one process
        from .distributed import ScaledRunner
        runner = ScaledRunner(config, mdata, encoders, run_dir, probe_cache=config.probe_cache,
                              lr_step=config.lr_step_epochs, lr_gamma=config.lr_gamma, amp=config.amp)
    else:
        runner = _Runner(config, mdata, encoders, run_dir)
    runner.interrupt_after = interrupt_after
    if resume is not None:
        runner.load()
    from tqdm.auto import tqdm

    if runner.phase == "stage1":
        total = {"unimodal": config.unimodal_epochs, "schedule": max(config.schedule_epochs)}.get(
            config.method, config.max_unimodal_epochs)
        with tqdm(total=total, initial=runner.stage1_epoch, desc=f"{config.method} stage I",
                  disable=not config.progress, leave=False) as bar:
            runner.run_stage1(bar)
    if runner.phase == "stage2":
        total = config.joint_epochs if config.method == "joint" else config.stage2_epochs
        with tqdm(total=total, initial=runner.stage2_epoch, desc=f"{config.method} stage II",
                  disable=not config.progress, leave=False) as bar:
            runner.run_stage2(bar)
    res = runner.finish(t0)
    log.info("run %s done: test accuracy %.4f (val %.4f) in %.1fs", run_dir, res.test_accuracy,
             res.val_accuracy, res.wall_time_s)
    return res
