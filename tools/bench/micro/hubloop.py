"""The hub's per-message work for one NEAREST, in-process: the real Link + Router + locator + codec
fed framed requests with no socket and no second process, next to the echo server's handler fed
the same bytes (why the load test's hub/echo ratio is what it is). The harness is
tools/bench/inproc.py, shared with tests/test_nearest_fast_path.py.
"""

import random
import time

from tools.bench.provision import REGION


def nearest_path(n_stations=10000, batch=32, rounds=200):
    """µs per NEAREST through the hub's Link + Router (real locator, real codec, no sockets) and
    through the echo server's handler, fed the same framed requests."""
    import msgpack

    from hub.actors.registry import StationView
    from tools.bench.echo import EchoProtocol, EchoServer
    from tools.bench.inproc import inproc_link
    from tools.bench.provision import station_positions
    from transport import kinds as K
    from transport.framing import encode_stream

    view = {
        sid: StationView(sid, lat, lon, "Offline", None, None, 2, 50.0, False, None, {1: "Unavailable"})
        for sid, lat, lon in station_positions(n_stations)
    }
    link, router, sink = inproc_link(view, peer_id="BV-000000", label="bench")
    rng = random.Random(3)
    lat0, lat1, lon0, lon1 = REGION
    seq = 0
    batches = []
    for _ in range(rounds):
        frames = []
        for _ in range(batch):
            seq += 1
            frames.append(
                encode_stream(
                    msgpack.packb([K.NEAREST, seq, rng.uniform(lat0, lat1), rng.uniform(lon0, lon1), 5, None])
                )
            )
        batches.append(b"".join(frames))

    class _Transport:
        def write(self, data):
            pass

    echo = EchoProtocol(EchoServer())
    echo.transport = _Transport()

    def hub_run():
        for data in batches:
            link.data_received(data)
            sink.clear()

    def echo_run():
        for data in batches:
            echo.data_received(data)

    out = {}
    for name, fn in (("hub_us_per_nearest", hub_run), ("echo_us_per_nearest", echo_run)):
        fn()
        best = min(_timed(fn) for _ in range(3))
        out[name] = round(best / (rounds * batch) * 1e6, 2)
    out.update(locator_alone(router.index.current, n_stations))
    out["locator_share_of_hub"] = round(out["locator_us_warm"] / out["hub_us_per_nearest"], 2)
    return out


def locator_alone(snapshot, n_stations, queries=4000, k=5):
    """The locator alone, on the snapshot the hub loop above used, at fresh random points:
    median µs of a query whose cell's block is already cached (what a running hub sees), of
    the first query in a cell (it only marks the cell: the grid search answers) and of the
    second (it builds the cell's block)."""
    import statistics

    rng = random.Random(11)
    lat0, lat1, lon0, lon1 = REGION
    clock = time.perf_counter

    def medians(snap, points):
        times = []
        for lat, lon in points:
            t0 = clock()
            snap.nearest(lat, lon, k)
            times.append(clock() - t0)
        return statistics.median(times) * 1e6

    points = [(rng.uniform(lat0, lat1), rng.uniform(lon0, lon1)) for _ in range(queries)]
    fresh = snapshot.__class__(snapshot.cell_deg)  # same stations, no cached blocks
    for sid in snapshot.station_ids():
        fresh.upsert(sid, *snapshot.position(sid))
    cold_snap = fresh.frozen()
    seen, first = set(), []
    for lat, lon in points:  # one query per cell: the first only marks the cell, the second builds its block
        key = (int((lat + 90.0) / snapshot.cell_deg), int((lon + 180.0) / snapshot.cell_deg))
        if key not in seen:
            seen.add(key)
            first.append((lat, lon))
    out = {
        "locator_us_first_in_cell": round(medians(cold_snap, first), 2),
        "locator_us_second_in_cell": round(medians(cold_snap, first), 2),
    }
    medians(snapshot, points)  # every block built
    out["locator_us_warm"] = round(min(medians(snapshot, points) for _ in range(3)), 2)
    return out


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
