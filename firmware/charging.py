"""A realistic charge, simulated in (possibly accelerated) wall time, in integers only.

The EV's battery management accepts its full power (``ev max_kw``) up to
TAPER_SOC (80%) and then a linearly falling share, down to TAPER_FLOOR (10%) of it
at 100% state of charge. The station delivers ``min(station limit, what the EV
accepts)``. Losses are not modelled: the metered energy is the energy the battery takes.

Everything is an int (W, mWh, ms, SoC in ppm): an ESP32 float is single precision,
where 48 kWh in Wh keeps only ~0.004 Wh and an uptime in seconds loses its
milliseconds. The power is held for cells of STEP_MS of charging time, counted from
the start of the charge, and recomputed from the battery's energy at each cell
boundary; energy is W x ms with the remainder carried. So the result does not depend
on how often ``advance`` is called (a 1 s cell against a taper lasting many minutes
makes the step error negligible).
"""

import sys

from transport.compat import const
from transport.errors import E_BAD_FIELD

from firmware.connector import Refused

STEP_MS = const(1000)  # the power is held constant for one cell of charging time
_WMS_PER_MWH = const(3600)  # 1 mWh = 3.6 J = 3600 W x ms

# An EV that says nothing about itself (ev map None): a mid-size car, low battery.
DEFAULT_EV = {"max_kw": 50, "capacity_kwh": 60, "soc": 0.2, "target_soc": 0.8}


def ev_params(ev):
    """(max_w, capacity_wh, soc_ppm, target_ppm) as ints from a REMOTE_START ev map; ValueError if bad.

    The map's numbers may be floats (a board decodes them as single precision): each is scaled
    once here to an int, and no arithmetic is done on it as a float after that."""
    if ev is None:
        ev = DEFAULT_EV
    vals = []
    for name in ("max_kw", "capacity_kwh", "soc", "target_soc"):
        v = ev.get(name, DEFAULT_EV[name])
        if type(v) is not int and type(v) is not float:
            raise ValueError("ev.%s must be a number" % name)
        vals.append(v)
    max_kw, cap, soc, target = vals
    if max_kw <= 0 or max_kw > 1000:
        raise ValueError("ev.max_kw must be in (0, 1000]")
    if cap <= 0 or cap > 1000:
        raise ValueError("ev.capacity_kwh must be in (0, 1000]")
    if soc < 0 or soc > 1 or target < 0 or target > 1:
        raise ValueError("ev.soc and ev.target_soc must be in 0..1")
    return to_milli(max_kw), to_milli(cap), int(soc * 1000000 + 0.5), int(target * 1000000 + 0.5)  # float-ok: to ppm


def to_milli(v):
    """kW -> W, kWh -> Wh, rounded to the nearest int (a float32 3.7 is 3.7000000477)."""
    return int(v * 1000 + 0.5)  # float-ok: a kW/kWh config or wire value scaled once to an int


def ev_check(ev):
    """ev_params for a hub request: Refused(E_BAD_FIELD) instead of ValueError."""
    if ev is not None and type(ev) is not dict:
        raise Refused(E_BAD_FIELD, "ev must be a map or nil")
    try:
        ev_params(ev)
    except ValueError as exc:
        raise Refused(E_BAD_FIELD, str(exc))


class Charge:
    """One EV on one connector. Power in W, energy in mWh (Wh in ``energy_wh``), time in ms."""

    def __init__(self, limit_w, ev_max_w, capacity_wh, soc_ppm, target_ppm):
        self.limit_w = limit_w
        self.ev_max_w = ev_max_w
        self.cap_mwh = capacity_wh * 1000
        # Battery energy in mWh (SoC x capacity); the delivered energy is the difference.
        self.e0 = self.e = soc_ppm * capacity_wh // 1000
        self.target = target_ppm * capacity_wh // 1000
        self._cell_ms = 0  # charging time into the current cell
        self._p = -1  # power held in the current cell (-1: recompute)
        self._rem = 0  # W x ms not yet a whole mWh
        self.paused = False  # the EV suspended the charge (SuspendedEV) or the relay is open

    @property
    def done(self):
        return self.e >= self.target

    @property
    def energy_mwh(self):
        return self.e - self.e0

    @property
    def energy_wh(self):
        return (self.e - self.e0 + 500) // 1000

    @property
    def soc_ppm(self):
        return self.e * 1000 // (self.cap_mwh // 1000)

    def set_limit(self, limit_w):
        """The station limit changed: it applies from now (the current cell is re-powered)."""
        self.limit_w = limit_w
        self._p = -1

    def accepted_w(self, e_mwh):
        """What the EV's battery accepts with `e_mwh` stored: full power to 80%, then linear to 10%
        at 100%: ev_max x (4.6 - 4.5 soc)."""
        c = self.cap_mwh
        if e_mwh * 5 < c * 4:
            return self.ev_max_w
        return self.ev_max_w * (46 * c - 45 * e_mwh) // (10 * c)

    def _power(self):
        if self.done or self.limit_w <= 0:
            return 0
        a = self.accepted_w(self.e)
        return a if a < self.limit_w else self.limit_w

    def power_w(self):
        """The power delivered right now (W)."""
        if self.paused:
            return 0
        if self._p < 0:
            self._p = self._power()
        return self._p

    def advance(self, dt_ms):
        """Charge for `dt_ms` milliseconds; returns the energy added (mWh)."""
        if dt_ms <= 0 or self.paused or self.done or self.limit_w <= 0:
            return 0
        before = self.e
        target = self.target
        while dt_ms > 0 and self.e < target:
            if self._p < 0:
                self._p = self._power()
            step = STEP_MS - self._cell_ms
            if step > dt_ms:
                step = dt_ms
            wms = self._p * step + self._rem
            self.e += wms // _WMS_PER_MWH
            self._rem = wms % _WMS_PER_MWH
            dt_ms -= step
            self._cell_ms += step
            if self._cell_ms >= STEP_MS:
                self._cell_ms = 0
                self._p = -1
        if self.e >= target:
            self.e = target
            self._p = 0
        return self.e - before

    if sys.implementation.name != "micropython":  # for the simulator's "free in X min"; not on the board

        def seconds_to_target(self):
            """Time to reach the target at the current limit (for 'free in X min'), in whole seconds:
            the closed form of the model (constant power to the knee, then an exponential approach);
            the board's 1 s cells follow it to about a second. CPython only, so floats are fine."""
            import math

            if self.done:
                return 0
            if self.limit_w <= 0:
                return -1
            cap = self.cap_mwh / 1e6  # kWh
            soc = self.e / self.cap_mwh
            target = self.target / self.cap_mwh
            limit = self.limit_w / 1000
            ev_max = self.ev_max_w / 1000
            k = 4.5  # (1 - 0.1) / (1 - 0.8): the taper's slope per unit SoC
            knee = 0.8 if limit >= ev_max else 0.8 + (1 - limit / ev_max) / k
            t_h = 0.0
            if soc < knee:
                stop = knee if knee < target else target
                t_h += (stop - soc) * cap / min(limit, ev_max)
                soc = stop
            if soc < target:
                t_h += math.log((1 - k * (soc - 0.8)) / (1 - k * (target - 0.8))) / (k * ev_max / cap)
            return int(t_h * 3600 + 0.5)
