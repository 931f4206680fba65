"""The control pilot (firmware/pilot.py) and the charger's electrical interface (firmware/evse.py) under
CPython with fake pins, driving the real charge-point core against the in-process hub end."""

import random

import pytest

from firmware import pilot as P
from firmware.config import normalize
from firmware.evse import Port, attach
from test_firmware_core import EV, ask, err_code, online
from transport import kinds as K
from transport.errors import E_INVALID_STATE

# The pilot voltage seen through the default divider (-12..+12 V onto 0..3300 mV) at each state.
MV = {"A": 3300, "B": 2887, "C": 2475, "D": 2062, "E": 1650, "F": 0}
PILOT = {"adc": [34], "pwm": [25]}
PILOT_CFG = {"evse": PILOT, "relay_pins": [26]}


class FakeAdc:
    def __init__(self):
        self.mv = MV["A"]

    def read_uv(self):
        return self.mv * 1000


class FakePwm:
    def __init__(self):
        self.duty = None

    def duty_u16(self, v):
        self.duty = v


class FakePin:
    def __init__(self, v=0):
        self.v = v

    def value(self, v=None):
        if v is not None:
            self.v = v
        return self.v


class Rig:
    """A station online with the fake hub, its pilot, PWM, relay and button pins."""

    def __init__(self, metered=False, **pilot):
        self.cp, self.hub, self.wire, self.clock = online(evse=dict(PILOT, **pilot), relay_pins=[26])
        self.adc, self.pwm, self.relay, self.button = FakeAdc(), FakePwm(), FakePin(), FakePin(1)
        self.evse = attach(self.cp, [Port(self.adc, self.pwm, self.relay, self.button)], metered)
        self.port = self.evse.ports[0]

    def pilot(self, state, polls=3):
        self.adc.mv = MV[state]
        for _ in range(polls):
            self.evse.poll()
            self.wire.pump()

    @property
    def closed(self):
        return self.relay.v == 1

    @property
    def offering(self):
        return self.pwm.duty is not None and self.pwm.duty < 65535


def test_each_nominal_pilot_voltage_reads_as_its_state():
    assert [P.classify(MV[s]) for s in "ABCDEF"] == list("ABCDEF")
    assert P.classify(3094) == "A" and P.classify(3093) == "B" and P.classify(824) == "F"


def test_the_pwm_duty_advertises_the_current_with_integers():
    assert [P.duty_permille(a) for a in (5, 6, 16, 32, 51, 80, 100)] == [1000, 100, 266, 533, 850, 960, 960]
    assert P.duty_u16(1000) == 65535 and P.duty_u16(100) == 6553
    assert (
        P.amps_for(22000, 230, 1, 32) == 32
        and P.amps_for(3700, 230, 1, 32) == 16
        and P.amps_for(11000, 230, 3, 32) == 15
    )


def test_a_single_glitch_is_not_a_pilot_change():
    d = P.Debounce(2, "B")
    assert d.feed("A") is None and d.feed("B") is None and d.state == "B"
    assert d.feed("C") is None and d.feed("C") == "C"


def test_the_pilot_map_is_checked_and_a_bad_one_named():
    cfg = normalize(dict(PILOT_CFG, id="X", key="k"))
    assert P.check_config(cfg)["max_a"] == 32
    with pytest.raises(ValueError) as exc:
        P.check_config(normalize({"id": "X", "key": "k", "evse": {"adc": [34]}, "relay_pins": [26]}))
    assert "evse must be" in str(exc.value)
    for bad, word in (
        ({"evse": PILOT}, "relay_pins"),
        ({"mv": [1, 2, 3, 4, 5]}, "evse.mv"),
        ({"meter": [1, 2]}, "evse.meter"),
        ({"phases": 2}, "evse.phases"),
        ({"imp_kwh": 0.5}, "evse.imp_kwh"),
        ({"button": 7}, "evse.button"),
        ({"adc": [1.5]}, "evse.adc"),
    ):
        cfg = bad if "evse" in bad else dict(PILOT_CFG, evse=dict(PILOT, **bad))
        with pytest.raises(ValueError) as exc:
            P.check_config(normalize(dict(cfg, id="X", key="k")))
        assert word in str(exc.value)


def test_a_remote_start_with_no_vehicle_plugged_in_is_refused_and_the_relay_stays_open():
    rig = Rig()
    reply = ask(rig.hub, rig.wire, K.REMOTE_START, 1, "V-1", None, EV)
    assert err_code(reply) == E_INVALID_STATE and reply.fields[1] == "nothing is plugged into connector 1"
    assert err_code(ask(rig.hub, rig.wire, K.REMOTE_START, 0, "V-1", None, EV)) == E_INVALID_STATE
    rig.pilot("A")
    assert not rig.closed and not rig.offering and rig.cp.status(1) == "Available"


def test_a_pilot_driven_session_closes_the_relay_only_in_c_after_the_pwm_and_bills_the_meter_pulses():
    rig = Rig(metered=True, imp_kwh=500)  # 2 Wh per impulse
    rig.pilot("B")
    assert rig.cp.status(1) == "Preparing" and rig.hub.status(1) == "Preparing" and not rig.offering
    assert ask(rig.hub, rig.wire, K.REMOTE_START, 0, "V-1", None, EV).kind == K.ACK
    assert rig.offering and rig.pwm.duty == P.duty_u16(533) and not rig.closed  # 22 kW at 230 V: capped at 32 A
    rig.pilot("C")
    assert rig.closed
    for _ in range(20):
        rig.evse.pulse(1)
    rig.wire.run(60)
    rig.pilot("A", polls=1)
    assert not rig.closed  # the first reading that is not C opens it
    rig.pilot("A")
    (end,) = rig.hub.ends.values()
    assert end[2] == "V-1" and end[4] == 40 and end[7] == "EVDisconnected"
    assert rig.cp.status(1) == "Available" and not rig.offering


def test_the_pwm_follows_the_power_limit_the_hub_configures():
    rig = Rig()
    rig.pilot("B")
    ask(rig.hub, rig.wire, K.REMOTE_START, 1, "V-1", None, EV)
    rig.pilot("C")
    assert ask(rig.hub, rig.wire, K.CONFIGURE, "max_kw", 3.7).kind == K.ACK
    rig.pilot("C")
    assert rig.pwm.duty == P.duty_u16(P.duty_permille(16)) and rig.closed


def test_the_vehicle_pausing_in_b_suspends_the_session_and_c_resumes_it():
    rig = Rig()
    rig.pilot("B")
    ask(rig.hub, rig.wire, K.REMOTE_START, 1, "V-1", None, EV)
    rig.pilot("C")
    rig.pilot("B")
    assert rig.hub.status(1) == "SuspendedEV" and not rig.closed and rig.offering
    rig.pilot("C")
    assert rig.hub.status(1) == "Charging" and rig.closed


def test_pilot_e_or_f_faults_the_connector_and_a_return_to_a_clears_it():
    for state in "EF":
        rig = Rig()
        rig.pilot("B")
        ask(rig.hub, rig.wire, K.REMOTE_START, 1, "V-1", None, EV)
        rig.pilot("C")
        rig.pilot(state)
        assert not rig.closed and rig.hub.statuses[-1] == (1, "Faulted", "pilot state %s" % state)
        assert list(rig.hub.ends.values())[0][7] == "Fault"
        rig.pilot("A")
        assert rig.hub.status(1) == "Available"


def test_the_button_stops_a_running_session():
    rig = Rig()
    rig.pilot("B")
    ask(rig.hub, rig.wire, K.REMOTE_START, 1, "V-1", None, EV)
    rig.pilot("C")
    rig.button.v = 0
    rig.pilot("C", polls=1)
    assert list(rig.hub.ends.values())[0][7] == "Local" and not rig.closed and not rig.offering


def test_a_reserved_connector_starts_for_its_holder_when_the_car_is_plugged_in():
    rig = Rig()
    now = int(rig.cp.now())
    assert ask(rig.hub, rig.wire, K.RESERVE_NOW, 7, 1, "V-9", now, now + 1800).kind == K.ACK
    rig.wire.pump()
    rig.pilot("B")
    assert rig.cp.connectors[0].vehicle == "V-9" and rig.offering
    rig.pilot("C")
    assert rig.closed


def test_no_relay_ever_closes_without_a_vehicle_in_c_whatever_the_hub_sends():
    rng = random.Random(1861)
    rig = Rig(metered=True)
    now = int(rig.cp.now())
    requests = [
        (K.REMOTE_START, 0, "V-1", None, EV),
        (K.REMOTE_START, 1, "V-2", None, None),
        (K.REMOTE_STOP, "nope"),
        (K.CONFIGURE, "max_kw", 1000),
        (K.CONFIGURE, "max_kw", 1.0),
        (K.CHANGE_AVAILABILITY, 0, True),
        (K.RESERVE_NOW, 3, 1, "V-1", now, now + 600),
        (K.CANCEL_RESERVATION, 3),
        (K.TRIGGER, "status"),
    ]
    states = "AABBCCDEF"
    for _ in range(400):
        if rng.random() < 0.5:
            ask(rig.hub, rig.wire, *rng.choice(requests))
        else:
            rig.pilot(rng.choice(states), polls=rng.randint(1, 3))
        rig.evse.poll()
        if rig.closed:
            assert rig.port.deb.raw == "C" and rig.port.deb.state == "C" and rig.offering
            assert rig.cp.connectors[0].charge is not None
        rig.wire.run(1)
    assert rig.hub.starts  # the walk also charged: the rule is not met by never closing
