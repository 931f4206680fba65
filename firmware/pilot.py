"""IEC 61851-1 / SAE J1772 control pilot, pure integer logic (no hardware, no floats).

The pilot line is +12 V from the station through 1 kOhm; the vehicle pulls it down with its
resistors: A +12 V (nothing connected), B +9 V (connected), C +6 V (charging requested), D +3 V
(charging with ventilation), E 0 V (short / station error), F -12 V (the station's oscillator
is off or broken). The ADC sees the line through a divider: the config's ``"evse": {"mv": [...]}`` holds the five ADC
millivolt boundaries A|B, B|C, C|D, D|E, E|F, highest first (the defaults are the J1772 mid
points 10.5, 7.5, 4.5, 1.5, -6 V for a divider mapping -12..+12 V linearly onto 0..3300 mV).
While the PWM runs the line is a square wave: the state is read from the *high* level, the
maximum of a few samples.

The duty cycle advertises the current the vehicle may draw (J1772): 6-51 A: duty = A / 0.6 %;
51-80 A: duty = A / 2.5 + 64 %. Below 6 A nothing is offered: the line stays at +12 V (100%).
"""

from transport.compat import const

A = "A"
B = "B"
C = "C"
D = "D"
E = "E"
F = "F"
STATES = "ABCDEF"
DEFAULT_MV = (3094, 2681, 2269, 1856, 825)  # -12..+12 V onto 0..3300 mV: 137.5 mV per volt
MIN_A = const(6)
MAX_A = const(80)
FULL_U16 = const(65535)
# The vehicle of a connector whose car the pilot sees but nobody has named yet (J1772 carries no
# identity): the next REMOTE_START's vehicle takes it (firmware/hubrequests.py has the literal).
PLUGGED = "?"


def check_config(cfg):
    """Checks a normalized config's "evse" map and fills in its defaults; returns it. ValueError
    names the key. {"adc": [GPIO per connector], "pwm": [...], "mv": DEFAULT_MV, "max_a": 32,
    "volts": 230, "phases": 1, "meter": null or [...], "imp_kwh": 1000, "button": null or [...]}."""
    p = cfg.get("evse")
    n = cfg["connectors"]
    if type(p) is not dict or p.get("adc") is None or p.get("pwm") is None:
        raise ValueError('evse must be {"adc": [GPIO per connector], "pwm": [GPIO per connector], ...}')
    if cfg["relay_pins"] is None:
        raise ValueError("evse needs relay_pins")
    for k in ("adc", "pwm", "meter", "button"):
        v = p.get(k)
        if v is not None and (type(v) is not list or len(v) != n or not all(type(g) is int for g in v)):
            raise ValueError("evse.%s must be one GPIO number per connector (%d)" % (k, n))
    mv = p.get("mv", DEFAULT_MV)
    if (
        type(mv) is not list
        and type(mv) is not tuple
        or len(mv) != 5
        or not all(type(v) is int for v in mv)
        or any(mv[i] <= mv[i + 1] for i in range(4))
    ):
        raise ValueError("evse.mv must be five integer ADC mV boundaries, highest first")
    p["mv"] = mv
    for k, lo, hi, default in (
        ("max_a", 6, 80, 32),
        ("volts", 100, 480, 230),
        ("phases", 1, 3, 1),
        ("imp_kwh", 1, 100000, 1000),
    ):
        v = p.get(k, default)
        if type(v) is not int or v < lo or v > hi or (k == "phases" and v == 2):
            raise ValueError(
                "evse.%s must be an integer in %d..%d%s" % (k, lo, hi, " (1 or 3)" if k == "phases" else "")
            )
        p[k] = v
    return p


def classify(mv, bounds=DEFAULT_MV):
    """The pilot state of one high-level reading `mv` (ADC millivolts, an int)."""
    i = 0
    for b in bounds:
        if mv >= b:
            return STATES[i]
        i += 1
    return F


def duty_permille(amps):
    """The PWM duty (per mille) advertising `amps` (an int); 1000 (steady +12 V) below 6 A."""
    if amps < MIN_A:
        return 1000
    if amps > MAX_A:
        amps = MAX_A
    if amps <= 51:
        return amps * 1000 // 60
    return amps * 4 + 640


def duty_u16(permille):
    """A per-mille duty as the argument of machine.PWM.duty_u16."""
    return permille * FULL_U16 // 1000


def amps_for(limit_w, volts, phases, max_a):
    """The current to advertise for a power limit in W (ints): limit / (V x phases), capped at max_a."""
    a = limit_w // (volts * phases)
    return a if a < max_a else max_a


def vehicle_present(state):
    """A vehicle is connected (and not in error)."""
    return state == B or state == C or state == D


def may_close(state, pwm_on):
    """The relay may be closed: the vehicle asks for energy (C) and the PWM already tells it how
    much it may take. D (ventilation required) is not served: no ventilation is fitted."""
    return pwm_on and state == C


class Debounce:
    """A state accepted once `n` consecutive readings agree (the raw reading is kept too: opening
    the relay acts on it at once; only the events the core hears wait for agreement)."""

    def __init__(self, n=2, state=A):
        self.n = n
        self.state = state  # the accepted state
        self.raw = state  # the last reading
        self._count = 0

    def feed(self, raw):
        """Feeds one reading; returns the newly accepted state, or None if unchanged."""
        if raw != self.raw:
            self.raw = raw
            self._count = 1
        elif self._count < self.n:
            self._count += 1
        if raw != self.state and self._count >= self.n:
            self.state = raw
            return raw
        return None
