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
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = ["Controller", "Decision"]

_SIGNALS = ("pid", "mi")


@dataclass(frozen=True)
class Decision:
    """What to do after a probe.

    train_modality : 1 or 2 when a single encoder trains, None when both train
        (or when Stage I is over).
    start_joint : True once Stage II (joint fusion training) should start.
    reason : human-readable explanation of the decision.
    """

    train_modality: int | None
    start_joint: bool
    reason: str
    modalities: tuple = field(default=(1, 2))

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


class Controller:
    """Stage I state machine of Algorithm 1 (see the module docstring).

    Parameters
    ----------
    tau_u : float > 1, uniqueness-ratio threshold (paper default 5, best 1.5).
    lambda_s : float in (0, 1], synergy drop factor (paper best 0.8).
    probe_every : int >= 1, probing period in Stage I epochs (paper 5).
    max_unimodal_epochs : int >= 1, cap on Stage I epochs.
    max_switches : int >= 0 or None (no limit).
    max_modality_epochs : int >= 1 or None, per-encoder epoch cap.
    eps : float > 0, epsilon of the ratio test and the synergy guard.
    signal : "pid" (U1, U2, S) or "mi" (I1, I2, I1 + I2).
    when_balanced : "both" (default) or "keep"; see ambiguity 1.
    start_modality : 1 or 2, first encoder when ``when_balanced="keep"``.
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
        start_modality: int = 1,
    ):
        if not (isinstance(tau_u, (int, float)) and tau_u > 1):
            raise ValueError(f"tau_u must be a number > 1, got {tau_u!r}")
        if not (isinstance(lambda_s, (int, float)) and 0 < lambda_s <= 1):
            raise ValueError(f"lambda_s must be in (0, 1], got {lambda_s!r}")
        for name, v in (("probe_every", probe_every), ("max_unimodal_epochs", max_unimodal_epochs)):
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if max_switches is not None and not (isinstance(max_switches, int) and max_switches >= 0):
            raise ValueError(f"max_switches must be None or an integer >= 0, got {max_switches!r}")
        if max_modality_epochs is not None and not (
            isinstance(max_modality_epochs, int) and max_modality_epochs >= 1
        ):
            raise ValueError(f"max_modality_epochs must be None or an integer >= 1, got {max_modality_epochs!r}")
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"eps must be > 0, got {eps!r}")
        if signal not in _SIGNALS:
            raise ValueError(f"signal must be one of {_SIGNALS}, got {signal!r}")
        if when_balanced not in ("both", "keep"):
            raise ValueError(f"when_balanced must be 'both' or 'keep', got {when_balanced!r}")
        if start_modality not in (1, 2):
            raise ValueError(f"start_modality must be 1 or 2, got {start_modality!r}")
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
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self.best_synergy = -1.0
        self.switches = 0
        self.epoch = 0
        self.modality_epochs = [0, 0]
        self.history: list[dict] = []
        first = (1, 2) if self.when_balanced == "both" else (self.start_modality,)
        self.decision = self._make(first, False, "initial state: " + (
            "both encoders train while balanced" if len(first) == 2 else f"start with modality {first[0]}"
        ))

    @property
    def finished(self) -> bool:
        return self.decision.start_joint

    def state_dict(self) -> dict:
        """JSON-serializable state (for checkpoints)."""
        return {
            "best_synergy": self.best_synergy,
            "switches": self.switches,
            "epoch": self.epoch,
            "modality_epochs": list(self.modality_epochs),
            "history": list(self.history),
            "decision": self.decision.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_synergy = float(state["best_synergy"])
        self.switches = int(state["switches"])
        self.epoch = int(state["epoch"])
        self.modality_epochs = [int(x) for x in state["modality_epochs"]]
        self.history = list(state["history"])
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

    def due(self, epoch: int) -> bool:
        """Whether a probe (and a call to :meth:`observe`) is due after ``epoch``
        completed Stage I epochs under the current decision."""
        if self.finished:
            return False
        if epoch % self.probe_every == 0 or epoch >= self.max_unimodal_epochs:
            return True
        if self.max_modality_epochs is not None:
            n = epoch - self.epoch
            return any(self.modality_epochs[m - 1] + n >= self.max_modality_epochs
                       for m in self.decision.modalities)
        return False

    def _make(self, modalities, start_joint, reason) -> Decision:
        modalities = tuple(modalities)
        tm = modalities[0] if len(modalities) == 1 else None
        return Decision(train_modality=tm, start_joint=start_joint, reason=reason, modalities=modalities)

    def observe(self, observation: Any, epochs: int) -> Decision:
        """Feed one probe taken after ``epochs`` completed Stage I epochs.

        ``observation``: a PIDResult, or a mapping/object with ``U1, U2, S``
        (``signal="pid"``) or ``I1, I2`` (``signal="mi"``).  Returns the new
        :class:`Decision`; it also becomes ``self.decision``.
        """
        if self.finished:
            raise RuntimeError("the controller already decided to start Stage II; call reset() to reuse it")
        if not isinstance(epochs, int) or isinstance(epochs, bool):
            raise TypeError(f"epochs must be the int number of completed Stage I epochs, got {epochs!r}")
        if self.signal == "pid":
            a1, a2, s = _get(observation, "U1"), _get(observation, "U2"), _get(observation, "S")
            n1, n2, ns = "U1", "U2", "S"
        else:
            a1, a2 = _get(observation, "I1"), _get(observation, "I2")
            s = a1 + a2
            n1, n2, ns = "I1", "I2", "I1+I2"
        self._advance(epochs)
        current = self.decision.modalities
        reasons = []

        # Rule 1 (lines 8-12): uniqueness ratio.
        r12, r21 = a1 / (a2 + self.eps), a2 / (a1 + self.eps)
        if r12 > self.tau_u:
            wanted, why = (2,), f"{n1}/{n2}={r12:.3g} > tau_u={self.tau_u:g}: pause modality 1, train modality 2"
        elif r21 > self.tau_u:
            wanted, why = (1,), f"{n2}/{n1}={r21:.3g} > tau_u={self.tau_u:g}: pause modality 2, train modality 1"
        elif self.when_balanced == "both":
            wanted, why = (1, 2), f"ratios {n1}/{n2}={r12:.3g}, {n2}/{n1}={r21:.3g} within tau_u={self.tau_u:g}: train both"
        else:
            wanted, why = current, f"ratios within tau_u={self.tau_u:g}: keep modality {current}"
        if wanted != current:
            if self.max_switches is not None and self.switches >= self.max_switches:
                why += f"; ignored, switch limit max_switches={self.max_switches} reached, keep {list(current)}"
                wanted = current
            else:
                self.switches += 1
                why += f" (switch {self.switches})"
        reasons.append(why)

        # Per-modality caps (not in the paper).
        allowed = tuple(m for m in wanted if not self._capped(m))
        if not allowed:
            others = tuple(m for m in (1, 2) if m not in wanted and not self._capped(m))
            if others:
                reasons.append(f"modality {list(wanted)} reached max_modality_epochs="
                               f"{self.max_modality_epochs}; train modality {list(others)} instead")
                allowed = others
        elif allowed != wanted:
            reasons.append(f"modality {[m for m in wanted if m not in allowed]} reached "
                           f"max_modality_epochs={self.max_modality_epochs}")

        # Rule 2 (lines 13-17): synergy dropped below lambda_s times its peak.
        start_joint = False
        if self.best_synergy > self.eps and s < self.lambda_s * self.best_synergy:
            start_joint = True
            reasons.append(f"{ns}={s:.4g} < lambda_s*peak={self.lambda_s:g}*{self.best_synergy:.4g}: start Stage II")
        else:
            self.best_synergy = max(self.best_synergy, s)
            if not allowed:
                start_joint = True
                reasons.append(f"both encoders reached max_modality_epochs={self.max_modality_epochs}: start Stage II")
            elif epochs >= self.max_unimodal_epochs:
                start_joint = True
                reasons.append(f"max_unimodal_epochs={self.max_unimodal_epochs} reached: start Stage II")
        if start_joint:
            self.decision = Decision(train_modality=None, start_joint=True, reason="; ".join(reasons), modalities=())
        else:
            self.decision = self._make(allowed, False, "; ".join(reasons))
        self.history.append({
            "epoch": epochs,
            "modality_epochs": list(self.modality_epochs),
            n1: a1, n2: a2, ns: s,
            "best_synergy": self.best_synergy,
            "switches": self.switches,
            "decision": self.decision.to_dict(),
        })
        return self.decision
