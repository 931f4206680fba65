"""Micro benchmarks of the domain core: locator queries, conflict checks, durable reservations.

Run through `evhub bench --scenario micro` (figures(); printed, never asserted).

Stations are spread uniformly over a 10 x 10 degree region (north-east Brazil, where
the project started): a country-sized network whose density grows with the count,
which is the case that decides whether query time follows local density (it should)
or the station count (it must not).
"""

import logging
import os
import random
import statistics
import tempfile
import time

from hub.domain.booking import ReservationBook
from hub.domain.locator import DEFAULT_CELL_DEG, SpatialIndex
from hub.store.store import Store
from tools.bench.provision import REGION

NOW = 1_800_000_000
H = 3600


def _points(rng, n):
    lat0, lat1, lon0, lon1 = REGION
    return [(rng.uniform(lat0, lat1), rng.uniform(lon0, lon1)) for _ in range(n)]


def bench_locator(n_stations, queries=2000, k=5, cell_deg=DEFAULT_CELL_DEG, seed=1):
    """Median µs of one nearest-k query over n_stations."""
    rng = random.Random(seed)
    index = SpatialIndex(cell_deg)
    for i, (lat, lon) in enumerate(_points(rng, n_stations)):
        index.upsert("CP-%d" % i, lat, lon)
    times = []
    clock = time.perf_counter
    for lat, lon in _points(rng, queries):
        t0 = clock()
        index.nearest(lat, lon, k)
        times.append(clock() - t0)
    return statistics.median(times) * 1e6


def _book_with(n_reservations, per_station=100, store=None):
    """A book holding n_reservations, `per_station` each at 2-connector stations, 90 min
    windows every 2 h (a realistically busy station)."""
    store = store or Store(":memory:")
    n_stations = max(1, n_reservations // per_station)
    for s in range(n_stations):
        store.add_station("CP-%d" % s, -12.0, -38.0, 2, 22)
    book = ReservationBook(store)
    book.load()
    reqs = []
    for s in range(n_stations):
        for j in range(per_station):
            start = NOW + H + j * 2 * H
            reqs.append(("EV-%d-%d" % (s, j), "CP-%d" % s, start, start + 90 * 60))
    for i in range(0, len(reqs), 5000):
        book.reserve_many(reqs[i : i + 5000], NOW)
    book.take_events()
    return book, n_stations, per_station


def bench_conflict_check(n_reservations, checks=20000, per_station=100, seed=2):
    """Mean µs of one conflict check (is [start, end) free at a station) with n_reservations held."""
    book, n_stations, per_station = _book_with(n_reservations, per_station)
    rng = random.Random(seed)
    span = per_station * 2 * H
    probes = [("CP-%d" % rng.randrange(n_stations), NOW + rng.randrange(span)) for _ in range(checks)]
    t0 = time.perf_counter()
    for sid, start in probes:
        book.is_free(sid, start, start + H, NOW)
    return (time.perf_counter() - t0) / checks * 1e6


def bench_reserve_batch(n=20000, batch=500, stations=1000, path=None):
    """Durable reservations per second through reserve_many (one fsync'd commit per batch)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(path or os.path.join(tmp, "bench.db"))
        for s in range(stations):
            store.add_station("CP-%d" % s, -12.0, -38.0, 2, 22)
        book = ReservationBook(store)
        book.load()
        reqs = [
            (
                "EV-%d" % i,
                "CP-%d" % (i % stations),
                NOW + H + (i // stations) * 2 * H,
                NOW + H + (i // stations) * 2 * H + H,
            )
            for i in range(n)
        ]
        t0 = time.perf_counter()
        ok = 0
        for i in range(0, n, batch):
            ok += sum(1 for r in book.reserve_many(reqs[i : i + batch], NOW) if getattr(r, "ok", False))
        elapsed = time.perf_counter() - t0
        store.close()
    return ok / elapsed


def figures(quick: bool) -> dict:
    """The report's domain section; `quick` for smaller sizes (a smoke run)."""
    for name in ("hub.domain.booking", "hub.store.store"):  # one INFO line per reservation would drown the report
        logging.getLogger(name).setLevel(logging.WARNING)
    sizes = (1000, 10000) if quick else (1000, 10000, 100000)
    out: dict = {"locator_median_us (k=5, stations over 10x10 deg)": {n: round(bench_locator(n), 1) for n in sizes}}
    n_res = 10000 if quick else 100000
    out["conflict_check_us"] = {n_res: round(bench_conflict_check(n_res), 2)}
    out["durable_reservations_per_s (reserve_many, synchronous=FULL)"] = {
        "batch_500": round(bench_reserve_batch(5000 if quick else 20000, 500)),
        "batch_1": round(bench_reserve_batch(200, 1, stations=50)),
    }
    return out
