"""MeterValues (OCPP 1.6 §7.31, §7.43) -> evhub's integer energy and power.

Chargers differ in what they send (SteVe's long "meter values not shown" history is this parsing):
values are decimal *strings*; the unit is Wh or kWh (W or kW for power) and may be absent (Wh/W);
a sampled value without ``measurand`` is the energy register (Energy.Active.Import.Register);
three-phase chargers send one row per phase, some also a total row without ``phase``; signed
meter data (``format: SignedData``) is not a number. The total row wins when there is one,
otherwise the phase rows (L1, L2, L3, not the neutral) are summed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
_SCALE = {"Wh": 1, "kWh": 1000, "W": 1, "kW": 1000}
_LINE_PHASES = ("L1", "L2", "L3", "L1-N", "L2-N", "L3-N")


class Reading(NamedTuple):
    """What one MeterValues entry said, in evhub's units; None where it said nothing usable."""

    energy_wh: int | None
    power_w: int | None
    time: str | None  # the entry's ISO-8601 timestamp, as sent


def _number(sample: Mapping[str, Any], default_unit: str) -> int | None:
    """The sample's value in Wh or W (integer, rounded half up), or None when it is not a number."""
    if sample.get("format") == "SignedData":
        return None
    unit = sample.get("unit") or default_unit
    scale = _SCALE.get(unit)
    if scale is None:
        return None  # varh, A, V, Celsius...: not what this measurand means here
    try:
        value = Decimal(str(sample.get("value", "")).strip()) * scale
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0:
        return None
    return int(value.to_integral_value(rounding="ROUND_HALF_UP"))


def _measure(samples: Iterable[Mapping[str, Any]], measurand: str, default_unit: str) -> int | None:
    total = None
    phases: dict[str, int] = {}
    for s in samples:
        if (s.get("measurand") or ENERGY) != measurand or s.get("location", "Outlet") not in ("Outlet", "Inlet"):
            continue
        n = _number(s, default_unit)
        if n is None:
            continue
        phase = s.get("phase")
        if phase is None:
            total = n
        elif phase in _LINE_PHASES:
            phases[phase.split("-")[0]] = n
    if total is not None:
        return total
    return sum(phases.values()) if phases else None


def read_entry(entry: Mapping[str, Any]) -> Reading:
    """One ``meterValue`` entry: ``{"timestamp": ..., "sampledValue": [...]}``."""
    samples = [s for s in entry.get("sampledValue") or () if isinstance(s, Mapping)]
    return Reading(_measure(samples, ENERGY, "Wh"), _measure(samples, POWER, "W"), entry.get("timestamp"))


def latest(meter_value: Iterable[Mapping[str, Any]]) -> Reading:
    """The newest usable figures of a MeterValues request's ``meterValue`` list: entries are taken
    in order and a later one's energy or power replaces an earlier one's (ISO-8601 UTC times of
    one charger sort as strings, but chargers send them in order anyway)."""
    energy = power = time = None
    for entry in meter_value:
        if not isinstance(entry, Mapping):
            continue
        r = read_entry(entry)
        if r.energy_wh is not None:
            energy = r.energy_wh
        if r.power_w is not None:
            power = r.power_w
        if r.energy_wh is not None or r.power_w is not None:
            time = r.time
    return Reading(energy, power, time)
