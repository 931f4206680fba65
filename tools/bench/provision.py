"""A throwaway hub database for a bench run, provisioned through hub.store.store.Store before the
hub starts (so the hub loads every station at startup, and no CLI process per record).

Stations are spread uniformly over REGION, 10 x 10 degrees of north-east Brazil (the micro
benchmarks use it too): a country-sized network whose density grows with the count.
Every connection needs its own vehicle id: a second link of the same id replaces the first.
"""

import logging
import random

from hub.store.store import Store

REGION = (-17.0, -7.0, -45.0, -35.0)  # lat0, lat1, lon0, lon1
STATION_FMT = "BS-%06d"
VEHICLE_FMT = "BV-%06d"
CONNECTORS = 2
MAX_KW = 50.0


def station_positions(n, seed=1):
    rng = random.Random(seed)
    lat0, lat1, lon0, lon1 = REGION
    return [(STATION_FMT % i, rng.uniform(lat0, lat1), rng.uniform(lon0, lon1)) for i in range(n)]


def provision(db_path, n_stations, n_vehicles, seed=1):
    """Create stations and vehicles; returns (stations [(id, lat, lon)], vehicles [(id, token)])."""
    quiet = logging.getLogger("hub.store.store")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # one INFO line per record would dominate the time
    store = Store(db_path)
    try:
        # A throwaway database: durability of the provisioning itself is not under test, so the
        # per-record commits skip fsync. The hub opens its own connections with synchronous=FULL.
        store.unsafe_fast_writes()
        stations = station_positions(n_stations, seed)
        for sid, lat, lon in stations:
            store.add_station(sid, lat, lon, CONNECTORS, MAX_KW)
        vehicles = []
        for i in range(n_vehicles):
            vid = VEHICLE_FMT % i
            vehicles.append((vid, store.add_vehicle(vid)))
    finally:
        store.close()
        quiet.setLevel(level)
    return stations, vehicles
