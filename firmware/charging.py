"""A realistic charge, simulated in (possibly accelerated) wall time.

The EV's battery management accepts its full power (``ev max_kw``) up to
TAPER_SOC and then a linearly falling share, down to TAPER_FLOOR of it at 100%
state of charge. The station delivers ``min(station limit, what the EV
accepts)``. Energy is integrated exactly (piecewise: constant power, then an
exponential approach, since the accepted power is linear in SoC), so the result
does not depend on how often ``advance`` is called. Losses are not modelled:
the metered energy is the energy the battery takes.
"""

import math
import sys

from transport.errors import E_BAD_FIELD

from firmware.connector import Refused

TAPER_SOC = 0.8  # the EV starts to taper here
TAPER_FLOOR = 0.1  # accepted power at 100% SoC, as a share of ev max_kw
_K = (1 - TAPER_FLOOR) / (1 - TAPER_SOC)  # slope of the taper per unit SoC

# An EV that says nothing about itself (ev map None): a mid-size car, low battery.
DEFAULT_EV = {"max_kw": 50, "capacity_kwh": 60, "soc": 0.2, "target_soc": 0.8}


def ev_params(ev):
    """(max_kw, capacity_kwh, soc, target_soc) from a REMOTE_START ev map; ValueError if bad."""
    if ev is None:
        ev = DEFAULT_EV
    vals = []
    for name in ("max_kw", "capacity_kwh", "soc", "target_soc"):
        v = ev.get(name, DEFAULT_EV[name])
        if type(v) is not int and type(v) is not float:
            raise ValueError("ev.%s must be a number" % name)
        vals.append(float(v))
    max_kw, cap, soc, target = vals
    if max_kw <= 0 or max_kw > 1000:
        raise ValueError("ev.max_kw must be in (0, 1000]")
    if cap <= 0 or cap > 1000:
        raise ValueError("ev.capacity_kwh must be in (0, 1000]")
    if soc < 0 or soc > 1 or target < 0 or target > 1:
        raise ValueError("ev.soc and ev.target_soc must be in 0..1")
    return max_kw, cap, soc, target


def ev_check(ev):
    """ev_params for a hub request: Refused(E_BAD_FIELD) instead of ValueError."""
    if ev is not None and type(ev) is not dict:
        raise Refused(E_BAD_FIELD, "ev must be a map or nil")
    try:
        ev_params(ev)
    except ValueError as exc:
        raise Refused(E_BAD_FIELD, str(exc))


class Charge:
    """One EV on one connector. Times in seconds, power in kW, energy in Wh."""

    def __init__(self, limit_kw, ev_max_kw, capacity_kwh, soc, target_soc):
        self.limit_kw = limit_kw
        self.ev_max_kw = ev_max_kw
        self.capacity_kwh = capacity_kwh
        self.soc = soc
        self.target_soc = target_soc
        self.energy_wh = 0.0
        self.paused = False  # the EV suspended the charge (SuspendedEV) or the relay is open

    @property
    def done(self):
        return self.soc >= self.target_soc

    def accepted_kw(self, soc):
        """What the EV's battery accepts at `soc`."""
        if soc < TAPER_SOC:
            return self.ev_max_kw
        return self.ev_max_kw * (1 - _K * (soc - TAPER_SOC))

    def power_kw(self):
        if self.paused or self.done or self.limit_kw <= 0:
            return 0.0
        a = self.accepted_kw(self.soc)
        return a if a < self.limit_kw else self.limit_kw

    def _knee(self):
        """SoC below which the delivered power is constant (the station limit binds)."""
        if self.limit_kw >= self.ev_max_kw:
            return TAPER_SOC
        return TAPER_SOC + (1 - self.limit_kw / self.ev_max_kw) / _K

    def advance(self, dt_s):
        """Charge for `dt_s` seconds; returns the energy added (Wh)."""
        if dt_s <= 0 or self.paused or self.done or self.limit_kw <= 0:
            return 0.0
        cap = self.capacity_kwh
        target = self.target_soc
        soc = self.soc
        left_h = dt_s / 3600
        knee = self._knee()
        if soc < knee:
            p = self.limit_kw if self.limit_kw < self.ev_max_kw else self.ev_max_kw
            stop = knee if knee < target else target
            need_h = (stop - soc) * cap / p
            if left_h < need_h:
                soc += p * left_h / cap
                left_h = 0
            else:
                soc = stop
                left_h -= need_h
        if left_h > 0 and soc < target:
            # Accepted power u(soc) * ev_max with u linear in soc: u decays exponentially in time.
            rate = _K * self.ev_max_kw / cap  # per hour
            u0 = 1 - _K * (soc - TAPER_SOC)
            u_target = 1 - _K * (target - TAPER_SOC)
            if left_h >= math.log(u0 / u_target) / rate:
                soc = target
            else:
                u1 = u0 * math.exp(-rate * left_h)
                soc = TAPER_SOC + (1 - u1) / _K
        if soc > target:
            soc = target
        added = (soc - self.soc) * cap * 1000
        self.soc = soc
        self.energy_wh += added
        return added

    if sys.implementation.name != "micropython":  # for the simulator's "free in X min"; not on the board

        def seconds_to_target(self):
            """Time to reach the target at the current limit (for 'free in X min')."""
            if self.done:
                return 0
            if self.limit_kw <= 0:
                return -1
            cap = self.capacity_kwh
            soc = self.soc
            t_h = 0
            knee = self._knee()
            target = self.target_soc
            if soc < knee:
                p = self.limit_kw if self.limit_kw < self.ev_max_kw else self.ev_max_kw
                stop = knee if knee < target else target
                t_h += (stop - soc) * cap / p
                soc = stop
            if soc < target:
                rate = _K * self.ev_max_kw / cap
                t_h += math.log((1 - _K * (soc - TAPER_SOC)) / (1 - _K * (target - TAPER_SOC))) / rate
            return int(t_h * 3600 + 0.5)
