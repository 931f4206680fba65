"""The simulated world of `evhub sim`: where the stations are, what the vehicles are, how far and how long.

Stations come from tools/data/stations_bahia.csv (real city seats around Feira de
Santana); vehicles are drawn from a few battery classes. Everything random is drawn
from ``random.Random(seed)`` in a fixed order, so one seed gives one world.
"""

import collections
import csv
import math
import os
import random

from firmware.charging import Charge, to_milli
from hub.domain.geo import haversine_km

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "stations_bahia.csv")
CENTRE = (-12.2664, -38.9663)  # Feira de Santana
KM_PER_DEG = 111.32
STATION_JITTER_KM = 1.5
PLACE_JITTER_KM = 4.0

StationSpec = collections.namedtuple("StationSpec", "id city lat lon connectors max_kw")
VehicleSpec = collections.namedtuple(
    "VehicleSpec",
    "id lat lon capacity_kwh consumption_kwh_km trend ev_max_kw soc threshold target_soc seed",
)
Place = collections.namedtuple("Place", "city lat lon")

# (capacity kWh, consumption kWh/km, accepted power kW): small hatchback .. large SUV.
BATTERY_CLASSES = (
    (40.0, 0.150, 50.0),
    (52.0, 0.160, 75.0),
    (60.0, 0.170, 100.0),
    (77.0, 0.185, 130.0),
    (82.0, 0.200, 150.0),
)
# Drain trend: how hard the vehicle is driven (air conditioning, highway speeds, load).
TRENDS = {"gentle": 1.0, "fast": 1.5}
FAST_SHARE = 0.35


def load_rows(path=DATA):
    """The station rows of the CSV (comment lines start with #); ValueError names a bad row."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = [line for line in f if line.strip() and not line.lstrip().startswith("#")]
    rows = []
    for n, row in enumerate(csv.DictReader(lines), 2):
        try:
            rows.append(
                StationSpec(
                    row["id"].strip(),
                    row["city"].strip(),
                    float(row["lat"]),
                    float(row["lon"]),
                    int(row["connectors"]),
                    float(row["max_kw"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            raise ValueError("%s: bad station row %d: %r" % (path, n, row)) from None
    if not rows:
        raise ValueError("%s holds no stations" % path)
    return rows


def offset_km(lat, lon, north_km, east_km):
    """The point `north_km` north and `east_km` east of (lat, lon) (flat approximation, fine for a few km)."""
    return (lat + north_km / KM_PER_DEG, lon + east_km / (KM_PER_DEG * math.cos(math.radians(lat))))


def _jitter(rng, lat, lon, radius_km):
    r = radius_km * math.sqrt(rng.random())
    a = rng.random() * 2.0 * math.pi
    return offset_km(lat, lon, r * math.cos(a), r * math.sin(a))


def place_stations(n, seed, rows=None):
    """The `n` stations nearest to Feira de Santana, each moved up to 1.5 km by the seed.

    More than the CSV holds: the rows are used again (ids get a suffix), jittered apart."""
    if n < 1:
        raise ValueError("--stations must be at least 1")
    rows = sorted(rows or load_rows(), key=lambda r: (haversine_km(CENTRE[0], CENTRE[1], r.lat, r.lon), r.id))
    rng = random.Random("stations:%s" % seed)
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        lap = i // len(rows)
        sid = row.id if lap == 0 else "%s-%d" % (row.id, lap + 1)
        lat, lon = _jitter(rng, row.lat, row.lon, STATION_JITTER_KM * (1 + lap))
        out.append(StationSpec(sid, row.city, round(lat, 5), round(lon, 5), row.connectors, row.max_kw))
    return out


def places(stations):
    """The distinct cities of the stations: where vehicles start and drive to."""
    seen = {}
    for s in stations:
        seen.setdefault(s.city, []).append(s)
    return [
        Place(city, sum(s.lat for s in ss) / len(ss), sum(s.lon for s in ss) / len(ss)) for city, ss in seen.items()
    ]


def make_vehicles(n, seed, stations):
    """`n` vehicles spread over the station cities, with batteries from BATTERY_CLASSES."""
    rng = random.Random("vehicles:%s" % seed)
    where = places(stations)
    # Bigger places (more stations) get more vehicles, like traffic does.
    weights = [sum(1 for s in stations if s.city == p.city) for p in where]
    out = []
    for i in range(n):
        home = rng.choices(where, weights)[0]
        lat, lon = _jitter(rng, home.lat, home.lon, PLACE_JITTER_KM)
        cap, cons, kw = rng.choice(BATTERY_CLASSES)
        trend = "fast" if rng.random() < FAST_SHARE else "gentle"
        out.append(
            VehicleSpec(
                "EV-%03d" % (i + 1),
                round(lat, 5),
                round(lon, 5),
                cap,
                round(cons * rng.uniform(0.9, 1.1), 4),
                trend,
                kw,
                round(rng.uniform(0.12, 0.90), 3),
                round(rng.uniform(0.22, 0.35), 3),
                round(rng.uniform(0.55, 0.80), 3),
                rng.getrandbits(32),
            )
        )
    return out


def step_towards(lat, lon, to_lat, to_lon, km):
    """Move `km` along the straight line to the target; returns (lat, lon, km_moved, arrived)."""
    left = haversine_km(lat, lon, to_lat, to_lon)
    if left <= km or left < 1e-6:
        return to_lat, to_lon, left, True
    f = km / left
    return lat + (to_lat - lat) * f, lon + (to_lon - lon) * f, km, False


def charge_seconds(limit_kw, ev_max_kw, capacity_kwh, soc, target_soc):
    """How long the station's charge simulation takes from soc to target (the firmware's own model)."""
    if target_soc <= soc:
        return 0
    return Charge(
        to_milli(limit_kw),
        to_milli(ev_max_kw),
        to_milli(capacity_kwh),
        int(soc * 1e6 + 0.5),
        int(target_soc * 1e6 + 0.5),
    ).seconds_to_target()  # the firmware counts W, Wh and ppm


def target_within(limit_kw, ev_max_kw, capacity_kwh, soc, wanted, seconds):
    """The highest target <= wanted that the charge reaches within `seconds` (bisection on the model)."""
    if seconds <= 0 or wanted <= soc:
        return soc
    if charge_seconds(limit_kw, ev_max_kw, capacity_kwh, soc, wanted) <= seconds:
        return wanted
    lo, hi = soc, wanted
    for _ in range(20):
        mid = (lo + hi) / 2
        if charge_seconds(limit_kw, ev_max_kw, capacity_kwh, soc, mid) <= seconds:
            lo = mid
        else:
            hi = mid
    return lo
