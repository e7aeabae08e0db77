"""Algorithm 1's controller driven by scripted PID sequences: every branch."""
import json

import pytest

from multimodal_sched.controller import Controller, Decision


def atoms(U1, U2, S, R=0.1):
    return {"R": R, "U1": U1, "U2": U2, "S": S}


def test_no_torch_import_needed():
    import multimodal_sched.controller as c

    src = open(c.__file__).read()
    assert "import torch" not in src and "import fastpid" not in src


def test_initial_decision_trains_both_by_default_and_start_modality_when_keep():
    assert Controller().decision.modalities == (1, 2)
    assert Controller().decision.train_modality is None
    ctl = Controller(when_balanced="keep", start_modality=2)
    assert ctl.decision.modalities == (2,) and ctl.decision.train_modality == 2


def test_due_every_probe_every_epochs_and_at_cap():
    ctl = Controller(probe_every=5, max_unimodal_epochs=12)
    assert [e for e in range(1, 13) if ctl.due(e)] == [5, 10, 12]


def test_switch_on_tau_u_pauses_dominant_modality():
    ctl = Controller(tau_u=1.5, lambda_s=0.8, probe_every=1, max_unimodal_epochs=100)
    d = ctl.observe(atoms(U1=1.0, U2=0.5, S=0.1), 1)      # ratio 2 > 1.5: pause 1
    assert d.train_modality == 2 and not d.start_joint and "pause modality 1" in d.reason
    d = ctl.observe(atoms(U1=0.2, U2=0.9, S=0.12), 2)     # ratio U2/U1 = 4.5: pause 2
    assert d.train_modality == 1 and "pause modality 2" in d.reason
    d = ctl.observe(atoms(U1=0.5, U2=0.6, S=0.13), 3)     # balanced: back to both
    assert d.modalities == (1, 2) and d.train_modality is None
    assert ctl.switches == 3
    # per-modality epochs follow the decisions: both, then 2, then 1
    assert ctl.modality_epochs == [2, 2]


def test_ratio_exactly_tau_u_does_not_switch_and_eps_guards_zero():
    ctl = Controller(tau_u=2.0, probe_every=1, eps=1e-6)
    d = ctl.observe(atoms(U1=2.0, U2=1.0 - 1e-6, S=0.1), 1)  # U1/(U2+eps) == 2.0, not > 2.0
    assert d.modalities == (1, 2)
    d = ctl.observe(atoms(U1=0.0, U2=0.0, S=0.1), 2)          # 0/(0+eps) = 0: no division error
    assert d.modalities == (1, 2)
    d = ctl.observe(atoms(U1=1e-3, U2=0.0, S=0.1), 3)         # 1e-3/1e-6 = 1000 > tau
    assert d.train_modality == 2


def test_keep_mode_keeps_active_modality_when_balanced():
    ctl = Controller(tau_u=1.5, probe_every=1, when_balanced="keep", start_modality=1)
    assert ctl.observe(atoms(1.0, 0.9, 0.1), 1).train_modality == 1
    assert ctl.observe(atoms(2.0, 0.5, 0.1), 2).train_modality == 2
    assert ctl.observe(atoms(1.0, 0.9, 0.1), 3).train_modality == 2   # literal Algorithm 1: no change
    assert ctl.switches == 1


def test_switch_limit():
    ctl = Controller(tau_u=1.5, probe_every=1, max_switches=1)
    assert ctl.observe(atoms(1.0, 0.1, 0.1), 1).train_modality == 2
    d = ctl.observe(atoms(0.1, 1.0, 0.1), 2)
    assert d.train_modality == 2 and "switch limit" in d.reason
    d = ctl.observe(atoms(0.5, 0.5, 0.1), 3)
    assert d.train_modality == 2 and ctl.switches == 1


def test_switch_limit_zero_never_switches():
    ctl = Controller(tau_u=1.5, probe_every=1, max_switches=0)
    assert ctl.observe(atoms(5.0, 0.1, 0.1), 1).modalities == (1, 2)


def test_synergy_peak_transition():
    ctl = Controller(lambda_s=0.8, probe_every=5, max_unimodal_epochs=100)
    seq = [0.10, 0.20, 0.30, 0.25, 0.23]   # peak 0.30; 0.25 >= 0.24 continues, 0.23 < 0.24 stops
    decisions = [ctl.observe(atoms(0.5, 0.5, s), 5 * (i + 1)) for i, s in enumerate(seq)]
    assert [d.start_joint for d in decisions] == [False, False, False, False, True]
    assert "lambda_s" in decisions[-1].reason
    assert ctl.best_synergy == pytest.approx(0.30)      # the triggering probe does not raise the peak
    assert decisions[-1].modalities == () and ctl.finished
    assert not ctl.due(30)
    with pytest.raises(RuntimeError):
        ctl.observe(atoms(0.5, 0.5, 0.3), 30)


def test_synergy_rule_needs_positive_peak():
    ctl = Controller(lambda_s=0.8, probe_every=1, eps=1e-6)
    assert not ctl.observe(atoms(0.5, 0.5, 1e-9), 1).start_joint
    assert not ctl.observe(atoms(0.5, 0.5, 0.0), 2).start_joint    # peak 1e-9 <= eps: rule off


def test_uniqueness_decision_recorded_when_synergy_fires():
    ctl = Controller(tau_u=1.5, lambda_s=0.8, probe_every=1)
    ctl.observe(atoms(0.5, 0.5, 1.0), 1)
    d = ctl.observe(atoms(3.0, 0.5, 0.1), 2)
    assert d.start_joint and "pause modality 1" in d.reason and "Stage II" in d.reason


def test_max_unimodal_epochs_cap():
    ctl = Controller(probe_every=5, max_unimodal_epochs=7)
    assert not ctl.observe(atoms(0.5, 0.5, 0.1), 5).start_joint
    assert not ctl.due(6) and ctl.due(7)
    d = ctl.observe(atoms(0.5, 0.5, 0.2), 7)
    assert d.start_joint and "max_unimodal_epochs" in d.reason
    assert ctl.modality_epochs == [7, 7]


def test_per_modality_epoch_cap_moves_to_other_then_joint():
    ctl = Controller(tau_u=1.5, probe_every=10, max_unimodal_epochs=100, max_modality_epochs=4)
    assert ctl.due(4)                                   # both reach the cap at epoch 4: probe then
    d = ctl.observe(atoms(0.5, 0.5, 0.1), 4)
    assert d.start_joint and "max_modality_epochs" in d.reason

    ctl = Controller(tau_u=1.5, probe_every=2, max_unimodal_epochs=100, max_modality_epochs=3,
                     when_balanced="keep", start_modality=1)
    d = ctl.observe(atoms(0.5, 0.5, 0.1), 2)            # modality 1 at 2 epochs
    assert d.train_modality == 1
    assert ctl.due(3)                                   # modality 1 hits its cap off the probe grid
    d = ctl.observe(atoms(0.5, 0.5, 0.1), 3)
    assert d.train_modality == 2 and "instead" in d.reason
    d = ctl.observe(atoms(0.1, 5.0, 0.1), 4)            # rule asks for modality 1, capped: train 2
    assert d.train_modality == 2
    d = ctl.observe(atoms(0.5, 0.5, 0.1), 6)            # modality 2 at 3: both capped
    assert d.start_joint and ctl.modality_epochs == [3, 3]


def test_mi_signal_uses_mutual_informations():
    ctl = Controller(signal="mi", tau_u=1.5, lambda_s=0.8, probe_every=1)
    d = ctl.observe({"I1": 2.0, "I2": 0.5}, 1)
    assert d.train_modality == 2 and "I1/I2" in d.reason
    ctl.observe({"I1": 1.0, "I2": 1.0}, 2)               # I1+I2 = 2.0, peak 2.5 -> 2.0 >= 2.0
    d = ctl.observe({"I1": 0.9, "I2": 0.9}, 3)          # 1.8 < 0.8 * 2.5 = 2.0
    assert d.start_joint and "I1+I2" in d.reason


def test_accepts_objects_with_attributes_and_rejects_bad_input():
    class R:
        R, U1, U2, S, I1, I2 = 0.1, 0.2, 0.2, 0.3, 0.3, 0.3

    assert isinstance(Controller(probe_every=1).observe(R(), 1), Decision)
    with pytest.raises(KeyError):
        Controller().observe({"U1": 1.0}, 5)
    with pytest.raises(ValueError, match="not finite"):
        Controller().observe(atoms(float("nan"), 0.1, 0.1), 5)
    with pytest.raises(ValueError, match="tau_u"):
        Controller(tau_u=1.0)
    with pytest.raises(ValueError, match="lambda_s"):
        Controller(lambda_s=0)
    with pytest.raises(ValueError, match="probe_every"):
        Controller(probe_every=0)
    with pytest.raises(ValueError, match="decrease"):
        c = Controller(probe_every=1)
        c.observe(atoms(0.1, 0.1, 0.1), 3)
        c.observe(atoms(0.1, 0.1, 0.1), 2)


def test_state_dict_round_trip_is_json_and_continues_identically():
    script = [atoms(1.0, 0.3, 0.1), atoms(0.4, 0.5, 0.3), atoms(0.5, 0.2, 0.35), atoms(0.5, 0.5, 0.2)]
    a = Controller(probe_every=1, max_switches=5)
    for i, x in enumerate(script[:2]):
        a.observe(x, i + 1)
    b = Controller(probe_every=1, max_switches=5)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for i, x in enumerate(script[2:], start=3):
        assert a.observe(x, i) == b.observe(x, i)
    assert a.state_dict() == b.state_dict()
