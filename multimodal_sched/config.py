"""Run configuration: a dataclass, JSON/YAML load and save, and validation before any training."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["RunConfig", "PRESETS", "load_config", "save_config", "METHODS", "STRATEGY_METHODS", "SCHEDULE_METHODS",
           "STAGE2_ALIASES"]

#: methods trained jointly from scratch by one Stage II strategy: method -> (strategy, preset options)
STRATEGY_METHODS = {
    "concat": ("concat", {}), "uniform": ("uniform", {}), "aux0.6": ("aux", {"weight": 0.6}),
    "ogm-ge": ("ogm-ge", {}), "pmr": ("pmr", {}), "mmpareto": ("mmpareto", {}),
    "gblending": ("gblending", {}), "mla": ("mla", {}), "agm": ("agm", {}),
}
#: Stage I schedules of :mod:`multimodal_sched.schedules` (then Stage II by ``stage2``)
SCHEDULE_METHODS = ("sequential", "udi")
#: names ``stage2`` accepts besides the strategies themselves
STAGE2_ALIASES = {"aux0.6": ("aux", {"weight": 0.6})}
METHODS = ("pid", "mi", "joint", "unimodal", "schedule", *SCHEDULE_METHODS, *STRATEGY_METHODS)
FUSIONS = ("concat", "sum")
OPTIMIZERS = ("sgd", "adam")
ENCODERS = ("auto", "cnn4", "mlp", "resnet18")
BINNINGS = ("kmeans", "quantile")
FALLBACK_RULES = ("worse", "not-better")


_DEFAULT_STAGE2 = "uniform"

#: field metadata of the options only the controllers (methods ``pid`` and ``mi``) read
_CTL = {"controller": True}

#: named settings (``RunConfig.from_preset`` / ``--preset``); fields not named keep the defaults.
#: ``paper``: the paper's stated defaults (tau_u 5, lambda_s 0.95, f_p 5), Algorithm 1's literal
#: rules, the 64-d projection of section 5.2, Stage II = fused + unimodal losses summed equally.
#: ``crema-sweep``: the dataclass defaults; tau_u 1.5 and lambda_s 0.8 are the best values of the
#: paper's one-at-a-time sweeps on CREMA-D, with the evidence rules, early probes, val patience and
#: the fallback to plain joint training.
PRESETS = {
    "paper": dict(tau_u=5.0, lambda_s=0.95, probe_every=5, decision_rule="paper", first_probes=[],
                  val_patience=None, fallback=False, rollback=False, projection_dim=64, stage2="uniform",
                  when_balanced="both", start_modality=None, stop_after_switches=None),
    "crema-sweep": dict(tau_u=1.5, lambda_s=0.8, probe_every=5),
}


@dataclass
class RunConfig:
    """Everything a run needs.  Defaults finish on ``cg-digits`` in a few minutes on 2 CPU cores.

    Data: ``dataset`` names an entry of :data:`multimodal_sched.data.DATASETS`: built in
    (``cg-digits``, ``synthetic``), from disk under ``data_path`` (``cremad``, ``ave``,
    ``ucf101``, ``cgmnist``) or ``npz`` (``data_path`` is a file with arrays ``x1_train,
    x2_train, y_train``, same for ``val``, ``test`` and optionally ``probe``);
    ``dataset_options`` go to the dataset builder (e.g. ``{"color_corr": 0.9}``).  Ignored
    when ``run`` gets ``data=``.

    Method: ``pid`` (Algorithm 1 then Stage II), ``mi`` (the same controller
    driven by I(X1;Y), I(X2;Y)), ``joint`` (naive joint training from scratch),
    ``unimodal`` (each encoder with its own head), ``schedule`` (fixed Stage I
    epochs ``schedule_epochs = [e1, e2]`` then Stage II), ``sequential`` / ``udi`` (the
    Stage I schedules of :mod:`multimodal_sched.schedules`, set by ``method_options``, then
    Stage II), or one of :data:`STRATEGY_METHODS` (``concat``, ``uniform``, ``aux0.6``,
    ``ogm-ge``, ``pmr``, ``mmpareto``, ``gblending``, ``mla``, ``agm``): that strategy trained jointly
    from scratch like ``joint`` (``joint_epochs`` at ``lr_stage1``), ``stage2_options`` its
    hyperparameters.

    Stage II: ``stage2`` names a strategy of :mod:`multimodal_sched.methods` (``aux``:
    fused + ``weight`` x both unimodal losses, weight 0.6 unless ``stage2_options`` says
    otherwise; ``concat``: the fused loss alone; ``uniform``: the three losses summed, the default (the
    paper's text); ``ogm-ge``, ``pmr``, ``mmpareto``, ``gblending``, ``mla``, ``agm``; ``aux0.6`` = ``aux`` with weight
    0.6).  With a strategy method, ``stage2`` stays ``uniform`` (the default) or names that method's
    strategy; anything else is refused.  ``mla`` builds the model with one head shared by both
    modalities (``head1 is head2``, both embeddings of one width) and fuses by prediction entropy.

    Controller (methods ``pid`` / ``mi``): ``tau_u``, ``lambda_s``, ``probe_every`` and the options
    of :class:`multimodal_sched.controller.Controller` (``decision_rule``, ``confirm_probes``,
    ``first_probes``, ``start_modality``, ``stop_after_switches``, ``val_patience``,
    ``val_min_delta``).  ``val_restore``: a modality paused by ``val_patience`` goes back to its
    best-val encoder and head.  ``rollback``: when the synergy rule starts Stage II, the encoders
    and heads go back to those of the synergy-peak probe.  ``fallback``: after Stage II, plain joint
    training (method ``joint`` with the same Stage II strategy) also runs, in ``RUN_DIR/fallback``;
    with ``fallback_rule="worse"`` (default) its model replaces the scheduled one when it is right
    on clearly more val samples (paired test: ``c - b > fallback_z * sqrt(b + c)``, ``b``/``c`` the
    samples only the scheduled / only the joint model gets right); with ``"not-better"`` the
    scheduled model is kept only when *it* is right on clearly more (``b - c > fallback_z *
    sqrt(b + c)``), so a schedule val cannot tell apart from joint training gives way to it.
    ``projection_dim``: a trained ``Linear + ReLU`` layer to that width at the end of each encoder (paper section 5.2: 64); the probe, heads and fusion read it.
    Presets: :data:`PRESETS`.
    """

    dataset: str = "cg-digits"
    data_path: str | None = None
    dataset_options: dict = field(default_factory=dict)
    seed: int = 0
    method: str = "pid"
    out: str | None = None
    # models
    encoder: str = "auto"
    width: int = 16
    fusion: str = "concat"
    # optimization
    optimizer: str = "sgd"
    lr_stage1: float = 0.05
    lr_stage2: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step_epochs: int | None = None   # StepLR: lr * lr_gamma every this many epochs (paper: 30)
    lr_gamma: float = 0.1
    batch_size: int = 64
    # Stage II (and method joint): the strategy and its options
    stage2: str = "uniform"
    stage2_options: dict = field(default_factory=dict)
    # options of method sequential / udi (see multimodal_sched.schedules)
    method_options: dict = field(default_factory=dict)
    # epochs
    max_unimodal_epochs: int = 30
    stage2_epochs: int = 15
    joint_epochs: int = 30
    unimodal_epochs: int = 30
    schedule_epochs: list = field(default_factory=lambda: [10, 10])
    # controller (Algorithm 1)
    tau_u: float = field(default=1.5, metadata=_CTL)
    lambda_s: float = field(default=0.8, metadata=_CTL)
    probe_every: int = field(default=5, metadata=_CTL)
    max_switches: int | None = field(default=None, metadata=_CTL)
    max_modality_epochs: int | None = field(default=None, metadata=_CTL)
    eps: float = field(default=1e-6, metadata=_CTL)
    when_balanced: str = field(default="both", metadata=_CTL)
    start_modality: int | str | None = field(default=None, metadata=_CTL)   # 1, 2, "both"; None: both ("both") or 1 ("keep")
    decision_rule: str = field(default="evidence", metadata=_CTL)   # "evidence" (intervals) or "paper" (Algorithm 1 as written)
    confirm_probes: int = field(default=2, metadata=_CTL)           # evidence rule: consecutive drops below lambda_s * peak that end Stage I
    first_probes: list = field(default_factory=lambda: [0, 1], metadata=_CTL)   # extra probes after these Stage I epochs
    stop_after_switches: int | None = field(default=None, metadata=_CTL)   # Stage II after that many switches (the public code: 2)
    val_patience: int | None = field(default=3, metadata=_CTL)      # pause a modality whose val accuracy stalls this many of its epochs
    val_min_delta: float = field(default=0.0, metadata=_CTL)
    val_restore: bool = field(default=True, metadata=_CTL)          # a stalled modality goes back to its best-val encoder and head
    rollback: bool = field(default=False, metadata=_CTL)            # Stage II from the encoders saved at the synergy peak
    fallback: bool = field(default=True, metadata=_CTL)             # also train plain joint training; keep it when clearly better on val
    fallback_z: float = field(default=2.0, metadata=_CTL)           # paired (McNemar) z that val must show before falling back
    fallback_rule: str = field(default="worse", metadata=_CTL)     # "worse": fall back when joint is clearly better; "not-better": unless the schedule is
    # models: a trained projection layer on each encoder (paper section 5.2: 64)
    projection_dim: int | None = None
    # probing (multimodal_sched.probing: fastpid.estimate with bootstrap intervals)
    k: int | None = field(default=None, metadata=_CTL)        # clusters per modality; None: k*k*ny <= n/5 (probing.choose_k)
    pca_dims: int = field(default=5, metadata=_CTL)
    binning: str = field(default="kmeans", metadata=_CTL)
    pid_method: str = field(default="exact", metadata=_CTL)
    probe_boot: int = field(default=200, metadata=_CTL)       # bootstrap replicates per probe (0: no intervals)
    probe_bias_correction: str | None = field(default="bootstrap", metadata=_CTL)
    probe_confidence: float = field(default=0.95, metadata=_CTL)
    probe_cache: bool = field(default=False, metadata=_CTL)   # reuse probe embeddings of an encoder that has not trained since
    # what the probe embeds: "probe", the held-out probe split (default); "train", a fixed seeded
    # subset of probe_train_samples training samples (the authors' public code probes 20 training
    # batches of 64 = 1,280 samples; probes of training data see what the encoders fit, not what generalizes)
    probe_data: str = field(default="probe", metadata=_CTL)
    probe_train_samples: int = field(default=1280, metadata=_CTL)
    amp: bool = False           # bfloat16 autocast in training forward passes
    track_test: bool = False    # test accuracy after every Stage II epoch: RunResult.test_best_epoch (reporting only)
    # misc
    device: str = "cpu"
    num_threads: int | None = 1
    progress: bool = True
    plots: bool = True

    # ----------------------------------------------------------- validation
    def validate(self) -> "RunConfig":
        """Raise ``ValueError`` naming the first invalid field; returns self."""
        def bad(name, msg):
            raise ValueError(f"config.{name}: {msg}")

        from .data import DATASETS, dataset_names
        from .methods import get_strategy
        from .probing import PID_METHODS

        spec = DATASETS.get(self.dataset) if isinstance(self.dataset, str) else None
        if spec is None:
            bad("dataset", f"unknown dataset {self.dataset!r}; choose one of {dataset_names()} "
                           "or pass your own data with run(config, data=...)")
        if spec.kind == "disk" and not self.data_path:
            bad("data_path", f"dataset {self.dataset!r} needs data_path (its root folder; see docs/datasets.md)")
        if spec.kind == "file":
            if not self.data_path:
                bad("data_path", f"dataset {self.dataset!r} needs data_path (an .npz file)")
            if not os.path.isfile(self.data_path):
                bad("data_path", f"file not found: {self.data_path!r}")
        elif self.data_path is not None and not os.path.exists(self.data_path):
            bad("data_path", f"path not found: {self.data_path!r}")
        if not isinstance(self.dataset_options, dict):
            bad("dataset_options", f"must be a dict, got {type(self.dataset_options).__name__}")
        if self.method not in METHODS:
            bad("method", f"unknown method {self.method!r}; choose one of {list(METHODS)}")
        for name, allowed in (("fusion", FUSIONS), ("optimizer", OPTIMIZERS), ("encoder", ENCODERS),
                              ("binning", BINNINGS), ("when_balanced", ("both", "keep"))):
            if getattr(self, name) not in allowed:
                bad(name, f"must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in ("max_unimodal_epochs", "stage2_epochs", "joint_epochs", "unimodal_epochs"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                bad(name, f"must be a non-negative integer, got {v!r}")
        if self.k is not None and (not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 2):
            bad("k", f"must be None (chosen from the probe size) or an integer >= 2, got {self.k!r}")
        if not isinstance(self.probe_boot, int) or isinstance(self.probe_boot, bool) or self.probe_boot < 0:
            bad("probe_boot", f"must be a non-negative integer, got {self.probe_boot!r}")
        if self.probe_data not in ("probe", "train"):
            bad("probe_data", f"must be 'probe' (the held-out probe split) or 'train' (training samples), "
                              f"got {self.probe_data!r}")
        if (not isinstance(self.probe_train_samples, int) or isinstance(self.probe_train_samples, bool)
                or self.probe_train_samples < 2):
            bad("probe_train_samples", f"must be an integer >= 2, got {self.probe_train_samples!r}")
        if self.probe_bias_correction not in (None, "bootstrap", "shuffle", "extrapolation"):
            bad("probe_bias_correction", "must be None, 'bootstrap' or 'extrapolation', "
                                         f"got {self.probe_bias_correction!r}")
        if self.probe_bias_correction == "shuffle":
            bad("probe_bias_correction", "'shuffle' needs permutation replicates, which probes do not draw; "
                                         "use 'bootstrap', 'extrapolation' or None")
        if self.probe_bias_correction == "bootstrap" and self.probe_boot == 0:
            bad("probe_bias_correction", "'bootstrap' needs probe_boot > 0")
        if isinstance(self.probe_confidence, bool) or not (
                isinstance(self.probe_confidence, (int, float)) and 0 < self.probe_confidence < 1):
            bad("probe_confidence", f"must be in (0, 1), got {self.probe_confidence!r}")
        for name in ("probe_every", "batch_size", "pca_dims", "width"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(name, f"must be a positive integer, got {v!r}")
        if self.method in ("pid", "mi", *SCHEDULE_METHODS) and self.max_unimodal_epochs < 1:
            bad("max_unimodal_epochs", f"must be >= 1 for method {self.method!r}")
        se = self.schedule_epochs
        if not (isinstance(se, (list, tuple)) and len(se) == 2
                and all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in se)):
            bad("schedule_epochs", f"must be two non-negative integers [e1, e2], got {se!r}")
        for name in ("lr_stage1", "lr_stage2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0):
                bad(name, f"must be > 0, got {v!r}")
        if self.lr_step_epochs is not None and not (isinstance(self.lr_step_epochs, int) and self.lr_step_epochs >= 1):
            bad("lr_step_epochs", f"must be None or >= 1, got {self.lr_step_epochs!r}")
        if not (isinstance(self.lr_gamma, (int, float)) and 0 < self.lr_gamma <= 1):
            bad("lr_gamma", f"must be in (0, 1], got {self.lr_gamma!r}")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            bad("momentum", f"must be in [0, 1), got {self.momentum!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            bad("weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.stage2_options, dict):
            bad("stage2_options", f"must be a dict, got {type(self.stage2_options).__name__}")
        if self.method in STRATEGY_METHODS and self.stage2 not in (_DEFAULT_STAGE2, STRATEGY_METHODS[self.method][0]):
            bad("stage2", f"method {self.method!r} trains with its own strategy from scratch; leave stage2 at "
                          f"{_DEFAULT_STAGE2!r} (the default), or use method 'pid', 'mi', 'schedule', 'sequential' or 'udi' "
                          f"with stage2={self.stage2!r}")
        if self.method == "unimodal" and (self.stage2 != _DEFAULT_STAGE2 or self.stage2_options):
            bad("stage2", "method 'unimodal' has no Stage II; leave stage2 and stage2_options at their defaults")
        name, options = self.strategy_spec()
        try:
            get_strategy(name, **options)
        except (ValueError, TypeError) as e:
            bad("stage2" if "option" not in str(e) else "stage2_options", str(e))
        if name == "mla" and self.fusion != "concat":
            bad("fusion", "mla fuses the shared head's two predictions by their entropy and has no fusion "
                          f"layer to choose; leave fusion at 'concat', got {self.fusion!r}")
        if not isinstance(self.method_options, dict):
            bad("method_options", f"must be a dict, got {type(self.method_options).__name__}")
        if self.method in SCHEDULE_METHODS:
            from .schedules import get_schedule
            try:
                get_schedule(self.method, **self.method_options)
            except (ValueError, TypeError) as e:
                bad("method_options", str(e))
        elif self.method_options:
            bad("method_options", f"method {self.method!r} takes no method_options (only "
                                  f"{list(SCHEDULE_METHODS)} do), got {sorted(self.method_options)}")
        if self.pid_method not in PID_METHODS:
            bad("pid_method", f"must be one of {list(PID_METHODS)}, got {self.pid_method!r}")
        if not (isinstance(self.tau_u, (int, float)) and self.tau_u > 1):
            bad("tau_u", f"must be > 1, got {self.tau_u!r}")
        if not (isinstance(self.lambda_s, (int, float)) and 0 < self.lambda_s <= 1):
            bad("lambda_s", f"must be in (0, 1], got {self.lambda_s!r}")
        from .controller import DECISION_RULES
        if self.decision_rule not in DECISION_RULES:
            bad("decision_rule", f"must be one of {list(DECISION_RULES)}, got {self.decision_rule!r}")
        if self.start_modality not in (1, 2, "both", None) or isinstance(self.start_modality, bool):
            bad("start_modality", f"must be 1, 2, 'both' or None, got {self.start_modality!r}")
        for name, lo in (("confirm_probes", 1),):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= lo):
                bad(name, f"must be an integer >= {lo}, got {v!r}")
        for name in ("stop_after_switches", "val_patience", "projection_dim"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                bad(name, f"must be None or an integer >= 1, got {v!r}")
        fp = self.first_probes
        if not (isinstance(fp, (list, tuple))
                and all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in fp)):
            bad("first_probes", f"must be a list of integers >= 0 (Stage I epochs), got {fp!r}")
        for name in ("val_min_delta",):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and 0 <= v < 1):
                bad(name, f"must be a number in [0, 1), got {v!r}")
        if isinstance(self.fallback_z, bool) or not (isinstance(self.fallback_z, (int, float)) and self.fallback_z >= 0):
            bad("fallback_z", f"must be a number >= 0, got {self.fallback_z!r}")
        if self.fallback_rule not in FALLBACK_RULES:
            bad("fallback_rule", f"must be one of {sorted(FALLBACK_RULES)}, got {self.fallback_rule!r}")
        if self.max_switches is not None and not (isinstance(self.max_switches, int) and self.max_switches >= 0):
            bad("max_switches", f"must be None or >= 0, got {self.max_switches!r}")
        if self.max_modality_epochs is not None and not (
                isinstance(self.max_modality_epochs, int) and self.max_modality_epochs >= 1):
            bad("max_modality_epochs", f"must be None or >= 1, got {self.max_modality_epochs!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            bad("seed", f"must be a non-negative integer, got {self.seed!r}")
        if self.num_threads is not None and not (isinstance(self.num_threads, int) and self.num_threads >= 1):
            bad("num_threads", f"must be None (leave torch's setting) or >= 1, got {self.num_threads!r}")
        if self.out is not None and not (isinstance(self.out, str) and self.out):
            bad("out", f"must be None (a fresh runs/... folder) or a folder path, got {self.out!r}")
        if isinstance(self.eps, bool) or not (isinstance(self.eps, (int, float)) and 0 < self.eps < 1):
            bad("eps", f"must be in (0, 1), got {self.eps!r}")
        for name in ("probe_cache", "amp", "track_test", "progress", "plots", "val_restore", "rollback", "fallback"):
            if not isinstance(getattr(self, name), bool):
                bad(name, f"must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.device, str) or not self.device.startswith(("cpu", "cuda", "mps")):
            bad("device", f"must be 'cpu', 'cuda[:i]' or 'mps', got {self.device!r}")
        return self

    # ----------------------------------------------------------- method
    @property
    def joint_from_scratch(self) -> bool:
        """True for methods without Stage I (``joint`` and the strategy methods)."""
        return self.method == "joint" or self.method in STRATEGY_METHODS

    def strategy_spec(self) -> tuple:
        """``(strategy name, options)`` of the run's Stage II (or from-scratch) strategy."""
        if self.method in STRATEGY_METHODS:
            name, preset = STRATEGY_METHODS[self.method]
        elif isinstance(self.stage2, str) and self.stage2 in STAGE2_ALIASES:
            name, preset = STAGE2_ALIASES[self.stage2]
        else:
            name, preset = self.stage2, {}
        opts = self.stage2_options if isinstance(self.stage2_options, dict) else {}
        clash = sorted(set(preset) & set(opts))
        if clash:
            which = self.method if self.method in STRATEGY_METHODS else self.stage2
            raise ValueError(f"config.stage2_options: {which!r} fixes {clash} ({preset}); use "
                             f"'{name}' with stage2_options to choose them")
        return name, {**preset, **opts}

    # ----------------------------------------------------------- conversion
    def to_dict(self) -> dict:
        d = asdict(self)
        d["schedule_epochs"] = list(d["schedule_epochs"])
        d["first_probes"] = list(d["first_probes"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a mapping, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if "aux_weight" in unknown:
            raise ValueError("unknown config key 'aux_weight': the Stage II loss weight is an option of "
                             "the strategy, stage2: aux with stage2_options: {weight: W}")
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(names)}")
        d = dict(d)
        if "schedule_epochs" in d and isinstance(d["schedule_epochs"], tuple):
            d["schedule_epochs"] = list(d["schedule_epochs"])
        return cls(**d)

    @classmethod
    def from_preset(cls, name: str, **changes: Any) -> "RunConfig":
        """A config with the :data:`PRESETS` entry ``name`` applied, then ``changes``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **changes})

    def replace(self, **changes: Any) -> "RunConfig":
        d = self.to_dict()
        d.update(changes)
        return RunConfig.from_dict(d)


#: the fields only the controllers (methods ``pid`` and ``mi``) read (marked ``_CTL`` above)
CONTROLLER_FIELDS = tuple(f.name for f in fields(RunConfig) if f.metadata.get("controller"))


def load_config(path: str) -> RunConfig:
    """Read a config from ``.json``, ``.yaml`` or ``.yml`` (not validated yet)."""
    if not os.path.isfile(path):
        raise ValueError(f"config file not found: {path!r}")
    with open(path) as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        import yaml
        d = yaml.safe_load(text) or {}
    elif path.endswith(".json"):
        d = json.loads(text)
    else:
        raise ValueError(f"config file must end in .json, .yaml or .yml, got {path!r}")
    return RunConfig.from_dict(d)


def save_config(config: RunConfig, path: str) -> None:
    d = config.to_dict()
    with open(path, "w") as f:
        if path.endswith((".yaml", ".yml")):
            import yaml
            yaml.safe_dump(d, f, sort_keys=False)
        else:
            json.dump(d, f, indent=2)
