"""`evhub bench --scenario micro`: the micro benchmarks, in one report.

- codec and framing, CPython and MicroPython: tools/microbench.py (the wire engineer's);
- the hub's per-message work for one NEAREST, in-process, next to the echo server's
  (why the load-test ratio is what it is, without a socket or a second process in the way);
- locator query time at 1k, 10k, 100k stations, conflict check with 100k reservations and
  durable reservations per second through the store: hub/microbench.py;
- firmware memory: the MicroPython heap over a full session with a hub restart and a
  reboot, from the firmware engineer's tests in tests/test_firmware_micropython.py (run
  with pytest; their recorded properties are read from the JUnit XML).
"""

import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from hub import microbench as hubmicro

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE_TESTS = "tests/test_firmware_micropython.py"
FIRMWARE_HEAP_TESTS = "full_session_with_a_hub_restart or code_in_rom"


def wire(quick):
    from tools import microbench

    out = {}
    for r in microbench.bench_cpython(number=10000 if quick else 100000):
        out["%s %s %s (%d B)" % (r["runtime"], r["impl"], r["op"], r["bytes"])] = r["us_per_op"]
    try:
        rows = microbench.bench_micropython(number=300 if quick else 3000)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        out["micropython"] = "failed: %s" % str(exc).splitlines()[0]
        rows = []
    if not rows and "micropython" not in out:
        out["micropython"] = "no micropython binary: skipped"
    for r in rows:
        out["%s %s %s (%d B)" % (r["runtime"], r["impl"], r["op"], r["bytes"])] = r["us_per_op"]
    return out


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
    lat0, lat1, lon0, lon1 = hubmicro.REGION
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
    lat0, lat1, lon0, lon1 = hubmicro.REGION
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
    for lat, lon in points:  # one query per cell: every one builds its block
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


def domain(quick):
    for name in ("hub.domain.booking", "hub.store.store"):  # one INFO line per reservation would drown the report
        logging.getLogger(name).setLevel(logging.WARNING)
    sizes = (1000, 10000) if quick else (1000, 10000, 100000)
    out = {"locator_median_us (k=5, stations over 10x10 deg)": {n: round(hubmicro.bench_locator(n), 1) for n in sizes}}
    n_res = 10000 if quick else 100000
    out["conflict_check_us"] = {n_res: round(hubmicro.bench_conflict_check(n_res), 2)}
    out["durable_reservations_per_s (reserve_many, synchronous=FULL)"] = {
        "batch_500": round(hubmicro.bench_reserve_batch(5000 if quick else 20000, 500)),
        "batch_1": round(hubmicro.bench_reserve_batch(200, 1, stations=50)),
    }
    return out


def firmware_heap():
    """The firmware engineer's heap tests, run as they are; their recorded figures."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "junit.xml")
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            FIRMWARE_TESTS,
            "-k",
            FIRMWARE_HEAP_TESTS,
            "--junitxml",
            xml,
        ]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
        out = {"command": " ".join(["python"] + cmd[1:]), "passed": proc.returncode == 0}
        if os.path.exists(xml):
            for prop in ET.parse(xml).getroot().iter("property"):
                out[prop.get("name")] = int(prop.get("value")) if prop.get("value", "").isdigit() else prop.get("value")
        if proc.returncode != 0:
            out["tail"] = proc.stdout.strip().splitlines()[-3:]
    if "min_heap_kb_code_in_ram" in out:
        out["fits_48k_code_in_ram"] = out["min_heap_kb_code_in_ram"] <= 48
    if "rom_mode_heap_bytes" in out:
        out["fits_48k_code_in_rom"] = out["rom_mode_heap_bytes"] <= 48 * 1024
    return out


def run(quick=False, firmware=True):
    out = {"scenario": "micro", "python": sys.version.split()[0]}
    out["wire (us per op)"] = wire(quick)
    out["hub loop per NEAREST, 10k stations (us)"] = nearest_path(rounds=50 if quick else 200)
    out.update(domain(quick))
    if firmware:
        out["firmware heap (full session + hub restart + reboot)"] = firmware_heap()
    return out
