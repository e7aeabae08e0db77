"""Algorithm 1's Stage I controller as a small, pure-Python state machine.

No torch, no fastpid import: the controller only sees numbers.  A training
loop drives it with two calls::

    ctl = Controller(tau_u=1.5, lambda_s=0.8, probe_every=5, max_unimodal_epochs=30)
    decision = ctl.decision                  # before any probe: what to train first
    for epoch in range(1, ctl.max_unimodal_epochs + 1):
        for m in decision.modalities:        # (1,), (2,) or (1, 2)
            train_one_epoch(m)
        if ctl.due(epoch):                   # every probe_every epochs, and at the caps
            decision = ctl.observe(probe(...), epoch)
            if decision.start_joint:
                break
    # Stage II: fuse and train jointly

``observe`` accepts a :class:`fastpid.PIDResult` or any mapping / object with
the atoms ``U1, U2, S`` (``signal="pid"``) or the mutual informations ``I1, I2``
(``signal="mi"``, Table IV's MI-driven controller).  All quantities in bits.

Ambiguities of Algorithm 1 (paper section 4.1-4.2) and the choice made here
----------------------------------------------------------------------------
1. *Initial active modality.*  Algorithm 1 never initializes
   ``active_modality_idx``.  Section 4.2 says the dominant modality is *paused*
   when the uniqueness ratio exceeds ``tau_u``, which implies that both encoders
   train while the state is balanced.  Default ``when_balanced="both"``: start
   by training both encoders (each on its own loss; they share no graph), and
   go back to training both whenever a probe finds the ratio within ``tau_u``.
   ``when_balanced="keep"`` is the literal reading: the active modality only
   changes when a ratio exceeds ``tau_u``; the first one is ``start_modality``.
2. *When probes happen.*  Line 5 probes at ``epoch % f_p == 0`` *before*
   training that epoch, i.e. after ``f_p - 1`` epochs for the first probe.  Here
   a probe happens after every ``probe_every`` completed Stage I epochs
   (``due(epoch)`` with ``epoch`` = epochs completed), so every probe sees
   exactly ``probe_every`` more epochs of training than the previous one.
3. *Epoch caps.*  ``max_unimodal_epochs`` counts Stage I loop epochs (an epoch
   in which both encoders train counts once).  When the cap is reached a final
   probe is taken (``due`` is true there even off the probing grid) and Stage
   II starts with reason ``"max_unimodal_epochs"``.  The optional per-modality
   cap ``max_modality_epochs`` (not in the paper) freezes an encoder once it has
   trained that many epochs; if the rules ask for a capped encoder the other one
   trains, and when both are capped Stage II starts.  ``due`` also fires when
   an active encoder reaches its cap so the cap is never overshot.
4. *Switch limit.*  The paper has no ``max_switches``; here a "switch" is any
   change of the set of trained modalities made by the uniqueness rule.  Once
   ``max_switches`` switches have happened the uniqueness rule is ignored and
   the current set keeps training (the synergy rule and the caps still apply).
5. *Synergy rule guard.*  Line 13 tests ``best_synergy > 0``.  Solvers return
   tiny positive synergies (1e-9 bits) for synergy-free histograms, which would
   make the rule fire on noise; the guard here is ``best_synergy > eps``.
   ``best_synergy`` starts at -1 as in the paper and is updated *after* the
   test (line 17), so the probe that triggers Stage II does not raise the peak.
6. *Order of rules.*  As in the paper: uniqueness first, then synergy; when the
   synergy rule fires the uniqueness decision of that probe is recorded but no
   further Stage I training happens (``break``).
7. *MI controller* (section 6.3): ``signal="mi"`` replaces U1, U2 by I(X1;Y),
   I(X2;Y) in the ratio rule and S by I(X1;Y) + I(X2;Y) in the peak rule;
   everything else is identical.
8. ``eps`` is the epsilon of lines 8 and 10 (default 1e-6 bits).

Decision rules beyond Algorithm 1 (``decision_rule="evidence"``, not in the paper)
---------------------------------------------------------------------------------
A probe's atoms are estimates with a sampling error.  With ``decision_rule="evidence"``
each observation may carry ``interval = {name: [lo, hi]}`` (bootstrap intervals of the
atoms, as :func:`fastpid.estimate` returns them) and the two rules need evidence:

* *Uniqueness*: modality 1 is paused only when ``lo(U1) > tau_u * (hi(U2) + eps)``
  (the lower bound of the strong atom exceeds ``tau_u`` times the upper bound of the
  weak one); symmetrically for modality 2.  Overlapping evidence makes no decision
  (the current set keeps training), except that a paused modality resumes
  (``when_balanced="both"``) once the point ratio is back within ``tau_u``:
  training both is the neutral state and needs no evidence.
* *Synergy peak*: Stage II starts when ``hi(S) < lambda_s * peak`` and ``hi(S) < lo(peak)``
  (the drop exceeds both intervals), or when the point estimate stays below
  ``lambda_s * peak`` on ``confirm_probes`` consecutive probes.  The peak must itself be
  positive with evidence (``lo(peak) > eps``).

Without intervals (``interval`` missing or None) the bounds equal the point estimates
and the events say so (``"intervals": null``).  ``decision_rule="paper"`` is Algorithm 1
as written.  Every :class:`Decision` names the ``rule`` that fired and its ``evidence``:
the numbers and intervals compared.

Options that act in time (not in the paper)
-------------------------------------------
* ``first_probes``: extra probes after these Stage I epochs, e.g. ``(0, 1)``: a probe of the
  untrained encoders (call ``observe(obs, 0)`` before training) and one after the first
  epoch; then every ``probe_every`` epochs as before.  The epoch-0 probe informs the
  uniqueness rule only: untrained encoders have no synergy to lose, so it neither sets
  the synergy peak nor ends Stage I.
* ``start_modality``: 1, 2 or ``"both"``; ``None`` = both when ``when_balanced="both"``,
  modality 1 when ``"keep"``.  ``when_balanced="keep"`` with ``start_modality="both"`` is
  the authors' public code: both train until the first switch, then the last single
  modality keeps training.
* ``stop_after_switches``: start Stage II after that many switches (the public code: 2).
* ``val_patience``: the runner reports each modality's validation accuracy after every
  epoch it trained (:meth:`Controller.record_val`); a modality whose accuracy has not
  improved by more than ``val_min_delta`` for ``val_patience`` of its own epochs is
  paused for the rest of Stage I (rule ``val_patience``); when no modality may train,
  Stage II starts.  ``due`` fires as soon as that happens.
* :attr:`Controller.peak_epoch` is the epoch of the probe that set the synergy peak (a
  runner can roll the encoders back to it when the synergy rule fires).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = ["Controller", "Decision", "DECISION_RULES"]

_SIGNALS = ("pid", "mi")
DECISION_RULES = ("evidence", "paper")


@dataclass(frozen=True)
class Decision:
    """What to do after a probe.

    train_modality : 1 or 2 when a single encoder trains, None when both train
        (or when Stage I is over).
    start_joint : True once Stage II (joint fusion training) should start.
    reason : human-readable explanation of the decision.
    modalities : the encoders that train next, ``()`` once Stage II starts.
    rule : the rule that set the decision: ``"initial"``, ``"uniqueness"``, ``"balanced"``,
        ``"no_evidence"``, ``"synergy_peak"``, ``"switch_limit"``, ``"stop_after_switches"``,
        ``"val_patience"``, ``"max_modality_epochs"`` or ``"max_unimodal_epochs"``.
    evidence : the numbers each rule compared (estimates, intervals, thresholds).
    """

    train_modality: int | None
    start_joint: bool
    reason: str
    modalities: tuple = field(default=(1, 2))
    rule: str = "initial"
    evidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        return d


def _get(obs: Any, name: str) -> float:
    if isinstance(obs, Mapping):
        if name not in obs:
            raise KeyError(f"observation is missing {name!r}; got keys {sorted(obs)}")
        v = obs[name]
    else:
        if not hasattr(obs, name):
            raise TypeError(
                f"observation of type {type(obs).__name__} has no attribute {name!r}; "
                "pass a fastpid.PIDResult or a dict with R, U1, U2, S (and I1, I2 for signal='mi')"
            )
        v = getattr(obs, name)
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"observation {name}={v} is not finite")
    return v


def _intervals(obs: Any) -> dict | None:
    """``{name: (lo, hi)}`` from ``obs["interval"]`` (or ``obs.interval``), None when absent."""
    iv = obs.get("interval") if isinstance(obs, Mapping) else getattr(obs, "interval", None)
    if iv is None:
        return None
    if not isinstance(iv, Mapping):
        raise TypeError(f"observation interval must be a mapping name -> [lo, hi] or None, got {type(iv).__name__}")
    out = {}
    for k, v in iv.items():
        try:
            lo, hi = (float(x) for x in v)
        except (TypeError, ValueError):
            raise ValueError(f"observation interval[{k!r}] must be a pair [lo, hi], got {v!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise ValueError(f"observation interval[{k!r}] = [{lo}, {hi}] must be finite with lo <= hi")
        out[k] = (lo, hi)
    return out


def _check_int(name, v, lo, none_ok=False):
    if none_ok and v is None:
        return
    if not (isinstance(v, int) and not isinstance(v, bool) and v >= lo):
        raise ValueError(f"{name} must be {'None or ' if none_ok else ''}an integer >= {lo}, got {v!r}")


class Controller:
    """Stage I state machine of Algorithm 1 (see the module docstring).

    Parameters
    ----------
    tau_u : float > 1, uniqueness-ratio threshold (paper default 5, best 1.5).
    lambda_s : float in (0, 1], synergy drop factor (paper default 0.95, best 0.8).
    probe_every : int >= 1, probing period in Stage I epochs (paper 5).
    max_unimodal_epochs : int >= 1, cap on Stage I epochs.
    max_switches : int >= 0 or None (no limit).
    max_modality_epochs : int >= 1 or None, per-encoder epoch cap.
    eps : float > 0, epsilon of the ratio test and the synergy guard.
    signal : "pid" (U1, U2, S) or "mi" (I1, I2, I1 + I2).
    when_balanced : "both" (default) or "keep"; see ambiguity 1.
    start_modality : 1, 2, "both" or None (both when ``when_balanced="both"``, else 1).
    decision_rule : "paper" (Algorithm 1, the default here) or "evidence" (intervals).
    confirm_probes : int >= 1, consecutive point-estimate drops that also end Stage I under
        the evidence rule.
    first_probes : epochs (>= 0) with an extra probe, e.g. (0, 1).
    stop_after_switches : int >= 1 or None; Stage II after that many switches.
    val_patience : int >= 1 or None; val_min_delta : float >= 0.
    """

    def __init__(
        self,
        *,
        tau_u: float = 1.5,
        lambda_s: float = 0.8,
        probe_every: int = 5,
        max_unimodal_epochs: int = 150,
        max_switches: int | None = None,
        max_modality_epochs: int | None = None,
        eps: float = 1e-6,
        signal: str = "pid",
        when_balanced: str = "both",
        start_modality: int | str | None = None,
        decision_rule: str = "paper",
        confirm_probes: int = 2,
        first_probes: tuple = (),
        stop_after_switches: int | None = None,
        val_patience: int | None = None,
        val_min_delta: float = 0.0,
    ):
        if not (isinstance(tau_u, (int, float)) and tau_u > 1):
            raise ValueError(f"tau_u must be a number > 1, got {tau_u!r}")
        if not (isinstance(lambda_s, (int, float)) and 0 < lambda_s <= 1):
            raise ValueError(f"lambda_s must be in (0, 1], got {lambda_s!r}")
        _check_int("probe_every", probe_every, 1)
        _check_int("max_unimodal_epochs", max_unimodal_epochs, 1)
        _check_int("max_switches", max_switches, 0, none_ok=True)
        _check_int("max_modality_epochs", max_modality_epochs, 1, none_ok=True)
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"eps must be > 0, got {eps!r}")
        if signal not in _SIGNALS:
            raise ValueError(f"signal must be one of {_SIGNALS}, got {signal!r}")
        if when_balanced not in ("both", "keep"):
            raise ValueError(f"when_balanced must be 'both' or 'keep', got {when_balanced!r}")
        if start_modality not in (1, 2, "both", None):
            raise ValueError(f"start_modality must be 1, 2, 'both' or None, got {start_modality!r}")
        if decision_rule not in DECISION_RULES:
            raise ValueError(f"decision_rule must be one of {DECISION_RULES}, got {decision_rule!r}")
        _check_int("confirm_probes", confirm_probes, 1)
        if not (isinstance(first_probes, (list, tuple))
                and all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in first_probes)):
            raise ValueError(f"first_probes must be a list of integers >= 0, got {first_probes!r}")
        _check_int("stop_after_switches", stop_after_switches, 1, none_ok=True)
        _check_int("val_patience", val_patience, 1, none_ok=True)
        if isinstance(val_min_delta, bool) or not (isinstance(val_min_delta, (int, float)) and val_min_delta >= 0):
            raise ValueError(f"val_min_delta must be a number >= 0, got {val_min_delta!r}")
        self.tau_u = float(tau_u)
        self.lambda_s = float(lambda_s)
        self.probe_every = probe_every
        self.max_unimodal_epochs = max_unimodal_epochs
        self.max_switches = max_switches
        self.max_modality_epochs = max_modality_epochs
        self.eps = float(eps)
        self.signal = signal
        self.when_balanced = when_balanced
        self.start_modality = start_modality
        self.decision_rule = decision_rule
        self.confirm_probes = confirm_probes
        self.first_probes = tuple(sorted(set(first_probes)))
        self.stop_after_switches = stop_after_switches
        self.val_patience = val_patience
        self.val_min_delta = float(val_min_delta)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self.best_synergy = -1.0
        self.peak_interval = None     # [lo, hi] of the peak probe's synergy (None without intervals)
        self.peak_epoch = None
        self.drops = 0                # consecutive probes with S < lambda_s * peak (evidence rule)
        self.switches = 0
        self.epoch = 0
        self.modality_epochs = [0, 0]
        self.best_val = [None, None]  # best validation accuracy of each modality so far
        self.since_best = [0, 0]      # its epochs since that best
        self.stalled = [False, False]
        self.history: list[dict] = []
        sm = self.start_modality
        if sm is None:
            sm = "both" if self.when_balanced == "both" else 1
        first = (1, 2) if sm == "both" else (sm,)
        self.decision = self._make(first, False, "initial state: " + (
            "both encoders train" if len(first) == 2 else f"start with modality {first[0]}"), "initial", {})

    @property
    def finished(self) -> bool:
        return self.decision.start_joint

    _STATE = ("best_synergy", "peak_interval", "peak_epoch", "drops", "switches", "epoch", "modality_epochs",
              "best_val", "since_best", "stalled", "history")

    def state_dict(self) -> dict:
        """JSON-serializable state (for checkpoints)."""
        import copy
        d = {k: copy.deepcopy(getattr(self, k)) for k in self._STATE}
        d["decision"] = self.decision.to_dict()
        return d

    def load_state_dict(self, state: dict) -> None:
        import copy
        for k in self._STATE:
            if k in state:
                setattr(self, k, copy.deepcopy(state[k]))
        self.best_synergy = float(self.best_synergy)
        self.modality_epochs = [int(x) for x in self.modality_epochs]
        d = dict(state["decision"])
        d["modalities"] = tuple(d["modalities"])
        self.decision = Decision(**d)

    # --------------------------------------------------------------- protocol
    def _capped(self, m: int) -> bool:
        cap = self.max_modality_epochs
        return cap is not None and self.modality_epochs[m - 1] >= cap

    def _advance(self, epoch: int) -> None:
        """Account for the epochs trained under the current decision."""
        if epoch < self.epoch:
            raise ValueError(f"epochs must not decrease: got {epoch} after {self.epoch}")
        n = epoch - self.epoch
        for m in self.decision.modalities:
            self.modality_epochs[m - 1] += n
        self.epoch = epoch

    def record_val(self, modality: int, accuracy: float) -> None:
        """Validation accuracy of ``modality`` after an epoch in which it trained (for ``val_patience``)."""
        if modality not in (1, 2):
            raise ValueError(f"modality must be 1 or 2, got {modality!r}")
        a = float(accuracy)
        if not math.isfinite(a):
            raise ValueError(f"validation accuracy must be finite, got {accuracy!r}")
        i = modality - 1
        if self.best_val[i] is None or a > self.best_val[i] + self.val_min_delta:
            self.best_val[i], self.since_best[i] = a, 0
        else:
            self.since_best[i] += 1
        if self.val_patience is not None and self.since_best[i] >= self.val_patience:
            self.stalled[i] = True

    def due(self, epoch: int) -> bool:
        """Whether a probe (and a call to :meth:`observe`) is due after ``epoch``
        completed Stage I epochs under the current decision."""
        if self.finished:
            return False
        if epoch in self.first_probes:
            return True
        if epoch < 1:
            return False
        if epoch % self.probe_every == 0 or epoch >= self.max_unimodal_epochs:
            return True
        if any(self.stalled[m - 1] for m in self.decision.modalities):
            return True
        if self.max_modality_epochs is not None:
            n = epoch - self.epoch
            return any(self.modality_epochs[m - 1] + n >= self.max_modality_epochs
                       for m in self.decision.modalities)
        return False

    def _make(self, modalities, start_joint, reason, rule, evidence) -> Decision:
        modalities = tuple(modalities)
        tm = modalities[0] if len(modalities) == 1 else None
        return Decision(train_modality=tm, start_joint=start_joint, reason=reason, modalities=modalities,
                        rule=rule, evidence=evidence)

    def _bounds(self, iv, name, value):
        if iv is None or name not in iv:
            return value, value
        return iv[name]

    def _uniqueness(self, a1, a2, n1, n2, iv, current):
        """Rule 1: which modalities to train, the rule's name, its reason and evidence."""
        tau, eps = self.tau_u, self.eps
        r12, r21 = a1 / (a2 + eps), a2 / (a1 + eps)
        ev = {"rule": "uniqueness", n1: a1, n2: a2, "ratio_12": r12, "ratio_21": r21, "tau_u": tau}
        if self.decision_rule == "paper":
            if r12 > tau:
                return (2,), "uniqueness", f"{n1}/{n2}={r12:.3g} > tau_u={tau:g}: pause modality 1, train modality 2", ev
            if r21 > tau:
                return (1,), "uniqueness", f"{n2}/{n1}={r21:.3g} > tau_u={tau:g}: pause modality 2, train modality 1", ev
            if self.when_balanced == "both":
                return (1, 2), "balanced", (f"ratios {n1}/{n2}={r12:.3g}, {n2}/{n1}={r21:.3g} within "
                                            f"tau_u={tau:g}: train both"), ev
            return current, "balanced", f"ratios within tau_u={tau:g}: keep modality {list(current)}", ev
        lo1, hi1 = self._bounds(iv, n1, a1)
        lo2, hi2 = self._bounds(iv, n2, a2)
        ev.update({f"{n1}_interval": [lo1, hi1], f"{n2}_interval": [lo2, hi2],
                   "intervals": iv is not None and n1 in iv and n2 in iv})
        if lo1 > tau * (hi2 + eps):
            return (2,), "uniqueness", (f"lo({n1})={lo1:.3g} > tau_u*hi({n2})={tau:g}*{hi2:.3g}: "
                                        "pause modality 1, train modality 2"), ev
        if lo2 > tau * (hi1 + eps):
            return (1,), "uniqueness", (f"lo({n2})={lo2:.3g} > tau_u*hi({n1})={tau:g}*{hi1:.3g}: "
                                        "pause modality 2, train modality 1"), ev
        if self.when_balanced == "both" and current != (1, 2) and r12 <= tau and r21 <= tau:
            return (1, 2), "balanced", (f"point ratios {n1}/{n2}={r12:.3g}, {n2}/{n1}={r21:.3g} within "
                                        f"tau_u={tau:g}: train both again"), ev
        return current, "no_evidence", (f"intervals {n1}=[{lo1:.3g}, {hi1:.3g}], {n2}=[{lo2:.3g}, {hi2:.3g}] "
                                        f"do not separate by tau_u={tau:g}: keep {list(current)}"), ev

    def _synergy(self, s, ns, iv):
        """Rule 2: (fires, reason, evidence); updates the peak when it does not fire."""
        lam, eps, peak = self.lambda_s, self.eps, self.best_synergy
        lo, hi = self._bounds(iv, ns, s)
        ev = {"rule": "synergy_peak", ns: s, f"{ns}_interval": [lo, hi], "peak": peak,
              "peak_interval": self.peak_interval, "peak_epoch": self.peak_epoch, "lambda_s": lam}
        if self.epoch == 0:
            ev["note"] = "untrained encoders (epoch 0): no synergy peak yet"
            return False, "", ev
        if self.decision_rule == "paper":
            fire = peak > eps and s < lam * peak
            why = f"{ns}={s:.4g} < lambda_s*peak={lam:g}*{peak:.4g}: start Stage II"
        else:
            plo = self.peak_interval[0] if self.peak_interval is not None else peak
            below = peak > eps and plo > eps and s < lam * peak
            self.drops = self.drops + 1 if below else 0
            ev["consecutive_drops"] = self.drops
            ev["confirm_probes"] = self.confirm_probes
            clear = below and hi < lam * peak and hi < plo
            fire = clear or self.drops >= self.confirm_probes
            if clear:
                why = (f"hi({ns})={hi:.4g} < lambda_s*peak={lam:g}*{peak:.4g} and < lo(peak)={plo:.4g}: "
                       "start Stage II")
            else:
                why = (f"{ns} below lambda_s*peak={lam:g}*{peak:.4g} on {self.drops} consecutive probes "
                       f"(confirm_probes={self.confirm_probes}): start Stage II")
        if not fire and s > self.best_synergy:
            self.best_synergy = s
            self.peak_interval = [lo, hi] if (iv is not None and ns in iv) else None
            self.peak_epoch = self.epoch
            self.drops = 0
        return fire, why, ev

    def observe(self, observation: Any, epochs: int) -> Decision:
        """Feed one probe taken after ``epochs`` completed Stage I epochs.

        ``observation``: a :class:`fastpid.estimate.PIDEstimate` (what
        :func:`multimodal_sched.probe` returns; its estimates and intervals are
        read), a PIDResult, or a mapping/object with ``U1, U2, S``
        (``signal="pid"``) or ``I1, I2`` (``signal="mi"``), optionally ``interval``
        ``{name: [lo, hi]}``.  Returns the new :class:`Decision`; it also becomes ``self.decision``.
        """
        if not isinstance(observation, Mapping) and hasattr(observation, "estimate") \
                and hasattr(observation, "intervals"):          # a PIDEstimate
            ivs = observation.intervals
            observation = {**observation.estimate,
                           "interval": None if ivs is None else {q: list(v) for q, v in ivs.items()}}
        if self.finished:
            raise RuntimeError("the controller already decided to start Stage II; call reset() to reuse it")
        if not isinstance(epochs, int) or isinstance(epochs, bool):
            raise TypeError(f"epochs must be the int number of completed Stage I epochs, got {epochs!r}")
        iv = _intervals(observation)
        if self.signal == "pid":
            a1, a2, s = _get(observation, "U1"), _get(observation, "U2"), _get(observation, "S")
            n1, n2, ns = "U1", "U2", "S"
        else:
            a1, a2 = _get(observation, "I1"), _get(observation, "I2")
            s = a1 + a2
            n1, n2, ns = "I1", "I2", "I1+I2"
            if iv is not None and "I1" in iv and "I2" in iv:
                iv = {**iv, ns: (iv["I1"][0] + iv["I2"][0], iv["I1"][1] + iv["I2"][1])}
        self._advance(epochs)
        current = self.decision.modalities
        reasons, evidence = [], {}

        # Rule 1 (lines 8-12): uniqueness ratio.
        wanted, rule, why, evidence["uniqueness"] = self._uniqueness(a1, a2, n1, n2, iv, current)
        blocked = {m: ("val_patience" if self.stalled[m - 1] else "max_modality_epochs")
                   for m in (1, 2) if self.stalled[m - 1] or self._capped(m)}
        if wanted != current and current and all(m in blocked for m in wanted):
            why += "; not a switch: that modality may no longer train"
        elif wanted != current and current:
            if self.max_switches is not None and self.switches >= self.max_switches:
                why += f"; ignored, switch limit max_switches={self.max_switches} reached, keep {list(current)}"
                wanted, rule = current, "switch_limit"
            else:
                self.switches += 1
                why += f" (switch {self.switches})"
        reasons.append(why)

        # Held-out progress and per-modality caps (not in the paper).
        if any(self.stalled):
            evidence["val_patience"] = {"best_val": list(self.best_val), "since_best": list(self.since_best),
                                        "val_patience": self.val_patience, "val_min_delta": self.val_min_delta}

        def why_blocked(ms):
            return ", ".join(f"modality {m} " + ("stopped improving on val (best "
                                                 f"{self.best_val[m - 1]:.4g}, {self.since_best[m - 1]} epochs "
                                                 f"without gain, val_patience={self.val_patience})"
                                                 if blocked[m] == "val_patience" else
                                                 f"reached max_modality_epochs={self.max_modality_epochs}")
                             for m in ms)

        allowed = tuple(m for m in wanted if m not in blocked)
        if not allowed:
            others = tuple(m for m in (1, 2) if m not in wanted and m not in blocked)
            if others:
                reasons.append(f"{why_blocked(wanted)}; train modality {list(others)} instead")
                rule = blocked[wanted[0]]
                allowed = others
        elif allowed != wanted:
            reasons.append(why_blocked([m for m in wanted if m not in allowed]))
            rule = blocked[[m for m in wanted if m not in allowed][0]]

        # Rule 2 (lines 13-17): synergy dropped below lambda_s times its peak.
        start_joint = False
        fire, swhy, evidence["synergy"] = self._synergy(s, ns, iv)
        if fire:
            start_joint, rule = True, "synergy_peak"
            reasons.append(swhy)
        elif not allowed:
            start_joint = True
            rule = blocked[1]
            reasons.append(f"{why_blocked((1, 2))}: start Stage II")
        elif self.stop_after_switches is not None and self.switches >= self.stop_after_switches:
            start_joint, rule = True, "stop_after_switches"
            reasons.append(f"{self.switches} switches (stop_after_switches={self.stop_after_switches}): start Stage II")
        elif epochs >= self.max_unimodal_epochs:
            start_joint, rule = True, "max_unimodal_epochs"
            reasons.append(f"max_unimodal_epochs={self.max_unimodal_epochs} reached: start Stage II")
        if start_joint:
            self.decision = Decision(train_modality=None, start_joint=True, reason="; ".join(reasons),
                                     modalities=(), rule=rule, evidence=evidence)
        else:
            self.decision = self._make(allowed, False, "; ".join(reasons), rule, evidence)
        self.history.append({
            "epoch": epochs,
            "modality_epochs": list(self.modality_epochs),
            n1: a1, n2: a2, ns: s,
            "best_synergy": self.best_synergy,
            "switches": self.switches,
            "decision": self.decision.to_dict(),
        })
        return self.decision
