"""The charger's electrical interface: control pilot (ADC + 1 kHz PWM), contactor relay, S0 energy
meter and start/stop button, driving the charge-point core (firmware/chargepoint.py).

The core decides *whether* a connector should deliver (it calls ``relay(n, on)`` when a session
starts and ends); this module decides whether the relay may *physically* close: only when the
core wants it, the PWM has been advertising current since an earlier poll, and the pilot reads
state C. Any reading that is not C opens the relay at once (no debounce for opening).

``poll()`` runs once per board loop turn (board.py: a turn waits at most _POLL_MS = 50 ms for
input, then polls), so the relay opens within one turn, about 50 ms plus the turn's work, of the
pilot leaving C: inside IEC 61851's 100 ms. The events the core hears (plug, unplug, suspend,
fault) wait for DEBOUNCE agreeing readings.

Hardware objects are injected (``Port``), so the logic runs on CPython with fakes; ``start``
builds them from ``machine`` on a board. Integer arithmetic only: mV, A, W, pulses, Wh.
"""

from firmware import pilot as P
from firmware.connector import CHARGING, FAULTED, RESERVED, SUSPENDED_EV, Refused

SAMPLES = 24  # ADC reads per poll: the state is their maximum (the PWM's high level)
DEBOUNCE = 2  # agreeing polls before the core hears a pilot change


class Port:
    """One connector's pins: adc (read_uv or read_u16), pwm (duty_u16), relay Pin, optional button Pin."""

    def __init__(self, adc, pwm, relay, button=None):
        self.adc = adc
        self.pwm = pwm
        self.relay = relay
        self.button = button
        self.deb = P.Debounce(DEBOUNCE)
        self.want = False  # the core wants energy delivered
        self.duty = -1  # per mille now on the PWM (-1: never set)
        self.pwm_polls = 0  # drives since the PWM started offering current (0: it was set just now)
        self.closed = False
        self.pulses = 0  # S0 impulses counted by the pin IRQ
        self.base = 0  # pulses at the session's start
        self.pressed = False


class Evse:
    def __init__(self, cp, ports, log=None):
        self.cp = cp
        self.ports = ports
        self.log = log
        self.cfg = P.check_config(cp.config)  # the "evse" map, defaults filled in
        self.bounds = self.cfg["mv"]
        self.imp = self.cfg["imp_kwh"]
        for i in range(len(ports)):
            self.relay(i + 1, False)

    def _log(self, level, text):
        if self.log is not None:
            self.log(level, text)

    # --- what the core calls ---------------------------------------------------------------

    def relay(self, n, on):
        """The core's relay(connector, on): a wish; the pins follow it only as the pilot allows."""
        port = self.ports[n - 1]
        port.want = on
        self._drive(port, n)

    def meter(self, n, start=False):
        """The core's meter: energy (mWh) the S0 meter counted on connector n since the session's
        start (start=True marks it)."""
        port = self.ports[n - 1]
        if start:
            port.base = port.pulses
        return (port.pulses - port.base) * 1000000 // self.imp

    def pulse(self, n):
        """One S0 impulse (from the pin IRQ: allocation-free)."""
        self.ports[n - 1].pulses += 1

    # --- the loop -----------------------------------------------------------------------------

    def read_mv(self, adc):
        hi = 0
        i = 0
        while i < SAMPLES:
            mv = adc.read_uv() // 1000 if hasattr(adc, "read_uv") else adc.read_u16() * 3300 >> 16
            if mv > hi:
                hi = mv
            i += 1
        return hi

    def poll(self):
        n = 0
        for port in self.ports:
            n += 1
            new = port.deb.feed(P.classify(self.read_mv(port.adc), self.bounds))
            self._drive(port, n)  # opens at once on a raw reading that is not C
            if new is not None:
                self._log("info", "pilot %d: state %s" % (n, new))
                try:
                    self._follow(n, new)
                except Refused as exc:
                    self._log("warning", "pilot %d %s: %s" % (n, new, exc.text))
                self._drive(port, n)
            if port.button is not None:
                down = port.button.value() == 0
                if down and not port.pressed:
                    self._press(n)
                port.pressed = down

    def _drive(self, port, n):
        """PWM from the wish and the power limit; the relay from the pilot and the PWM."""
        amps = 0
        if port.want and P.vehicle_present(port.deb.state):
            amps = P.amps_for(self.cp.limit_w(), self.cfg["volts"], self.cfg["phases"], self.cfg["max_a"])
        duty = P.duty_permille(amps)
        if duty != port.duty:
            port.duty = duty
            port.pwm.duty_u16(P.duty_u16(duty))
            port.pwm_polls = 0
            self._log("debug", "pilot %d: PWM %d per mille" % (n, duty))
        offering = duty < 1000
        # Closed only on an accepted C that the last reading confirms, with the PWM set on an earlier drive.
        close = port.want and P.may_close(port.deb.state, offering and port.pwm_polls > 0) and port.deb.raw == P.C
        if offering:
            port.pwm_polls += 1
        if close != port.closed or port.duty == -1:
            port.closed = close
            port.relay.value(1 if close else 0)
            self._log("debug", "relay %d %s" % (n, "closed" if close else "open"))

    def _follow(self, n, state):
        """Tell the core what the pilot says."""
        cp = self.cp
        c = cp.connectors[n - 1]
        if state == P.E or state == P.F:
            if c.status != FAULTED:
                cp.fault(n, "pilot state %s" % state)
            return
        if state == P.A:
            if c.status == FAULTED:
                cp.clear_fault(n)
            elif c.vehicle is not None:
                cp.unplug(n)
            return
        if c.status == FAULTED:
            return  # back to A first
        if c.vehicle is None:
            # J1772 names no vehicle: the holder of the connector's reservation, else "someone".
            cp.plug(n, c.hold.vehicle if c.status == RESERVED and c.hold is not None else P.PLUGGED)
        elif c.charge is not None:
            # Called on changes only: B here follows C or D, the vehicle stopped asking for energy.
            if state == P.C and c.status == SUSPENDED_EV:
                cp.ev_suspend(n, False)
            elif state != P.C and c.status == CHARGING:
                cp.ev_suspend(n, True)

    def _press(self, n):
        c = self.cp.connectors[n - 1]
        if c.charge is not None:
            self._log("info", "button %d: stop" % n)
            self.cp.stop(n, "Local")
        else:
            self._log("info", "button %d: nothing to stop (a start comes from the hub or a reservation)" % n)


def start(cp, log=None):
    """An Evse on the board's pins from cp.config (an "evse" map), wired into cp; None without."""
    cfg = cp.config
    if cfg.get("evse") is None:
        return None
    p = P.check_config(cfg)
    from machine import ADC, PWM, Pin

    ports = []
    for i in range(len(cp.connectors)):
        adc = ADC(Pin(p["adc"][i]))
        if hasattr(ADC, "ATTN_11DB"):
            adc.atten(ADC.ATTN_11DB)  # the full 0..3.3 V range
        pwm = PWM(Pin(p["pwm"][i]), freq=1000, duty_u16=P.FULL_U16)
        button = None
        if p.get("button") is not None:
            button = Pin(p["button"][i], Pin.IN, Pin.PULL_UP)
        ports.append(Port(adc, pwm, Pin(cfg["relay_pins"][i], Pin.OUT, value=0), button))
    evse = attach(cp, ports, p.get("meter") is not None, log)
    if p.get("meter") is not None:
        for i in range(len(ports)):
            Pin(p["meter"][i], Pin.IN).irq(_counter(evse, i + 1), Pin.IRQ_FALLING)
    return evse


def attach(cp, ports, metered=False, log=None):
    """An Evse on `ports` that the core cp drives: its relay wishes, and its energy if metered."""
    evse = Evse(cp, ports, log)
    cp.relay = evse.relay
    if metered:
        cp.meter = evse.meter
    return evse


def _counter(evse, n):
    def count(_pin):
        evse.pulse(n)

    return count
