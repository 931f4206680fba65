"""`evhub bench --scenario cluster --db postgresql://... --hubs N`: several real hubs on one PostgreSQL.

Three figures, each from real `evhub serve` processes on loopback:
- reservations/s across the hubs: vehicles spread over the hubs book windows on shared stations,
  some of them contended; every acknowledged reservation is checked against the store and
  double bookings (overlaps beyond a station's connectors) are counted: they must be 0;
- cross-hub delivery: a RESERVE on the last hub until its station, linked to the first hub, holds
  the RESERVE_NOW (p50 / p99, ms);
- failover: the first hub is killed -9; a station listing two hubs is authenticated on the second,
  and the others show it Available again (ms after the kill).
Every loop is bounded in count and time.
"""

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from typing import Any

from tools.bench.clients import BenchError
from tools.bench.runner import check_double_booking, start_serve
from tools.common.hubproc import ServeProcess
from tools.client.hubclient import HubClient, HubError
from transport import kinds as K

log = logging.getLogger(__name__)

LAT, LON = -12.2664, -38.9663
WINDOW_S = 600
CROSSHUB_STATIONS = 16  # x 10 windows each: 160 samples, all inside the 16 a station holds


def _percentile_ms(sorted_s: "list[float]", q: float) -> float:
    return round(sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))] * 1000, 2)


def _hubs(tmp: str, db: str, n: int) -> "list[ServeProcess]":
    out = []
    for i in range(n):
        name = "hub%s" % "ABCDEFGH"[i]
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "hub.toml"), "w") as f:
            f.write(
                "[hub]\nmax_open_reservations_per_vehicle = 1000000\nmax_waiting_reservations_per_vehicle = 100000\n"
            )
        out.append(start_serve(d, db, ["--hub-id", name[3:], "--config", os.path.join(d, "hub.toml")]))
    return out


def _provision(db: str, stations: int, vehicles: int) -> "tuple[dict[str, str], dict[str, str]]":
    from hub.store.store import Store

    store = Store(db)
    try:
        keys = {}
        for i in range(stations):
            sid = "BX-%04d" % i
            keys[sid] = store.add_station(sid, LAT + i * 1e-4, LON, 1, 22.0)
        tokens = {"BV-%04d" % i: store.add_vehicle("BV-%04d" % i) for i in range(vehicles)}
    finally:
        store.close()
    return keys, tokens


class _Station(threading.Thread):
    """A station's link that holds whatever the hub sends (RESERVE_NOW, CANCEL_RESERVATION: ACK)."""

    def __init__(self, url: str, sid: str, key: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.client = HubClient(url, "station", sid, key, timeout=5)
        self.sid = sid
        self.deadline = deadline
        self.got: "dict[int, float]" = {}  # reservation id -> monotonic time its RESERVE_NOW arrived
        self.reconnected_at: "float | None" = None

    def start_link(self) -> "_Station":
        self.client.connect()
        self.client.request(K.BOOT, LAT, LON, 1, 22.0, "bench")
        self.client.request(K.STATUS, 1, "Available", None)
        self.start()
        return self

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            try:
                msg = self.client.wait_event((K.RESERVE_NOW, K.CANCEL_RESERVATION), timeout=0.5)
            except HubError:  # its hub died: reconnect through the list (the next hub answers)
                try:
                    self.client.reconnect()
                    self.client.request(K.BOOT, LAT, LON, 1, 22.0, "bench")
                    self.client.request(K.STATUS, 1, "Available", None)
                    self.reconnected_at = time.monotonic()
                except HubError:
                    time.sleep(0.05)
                continue
            if msg is None:
                continue
            if msg.kind == K.RESERVE_NOW:
                self.got.setdefault(msg.fields[0], time.monotonic())
            self.client.session.send(K.ACK, msg.seq)
            self.client._flush()


def _race(
    hubs: "list[ServeProcess]", tokens: "dict[str, str]", stations: "list[str]", duration: float
) -> "dict[str, Any]":
    """Vehicles on every hub book windows on shared stations for `duration` s; contended on purpose."""
    counts: "dict[str, float]" = {"ok": 0, "conflict": 0, "errors": 0}
    lock = threading.Lock()
    base = int(time.time()) + 3600
    stop = time.monotonic() + duration

    def vehicle(i: int, vid: str) -> None:
        hub = hubs[i % len(hubs)]
        n = 0
        try:
            with HubClient(hub.url, "vehicle", vid, tokens[vid], timeout=10) as v:
                while time.monotonic() < stop and n < 100_000:
                    # windows on a grid of slots shared by all vehicles: some asks collide, across hubs too
                    slot = (i * 7919 + n * 104729) % (len(stations) * 512)
                    sid, k = stations[slot % len(stations)], slot // len(stations)
                    start = base + k * WINDOW_S
                    ok = v.request(K.RESERVE, sid, start, start + WINDOW_S, None)[1][0]
                    with lock:
                        counts["ok" if ok else "conflict"] += 1
                    n += 1
        except HubError as exc:
            log.warning("bench vehicle %s: %s", vid, exc)
            with lock:
                counts["errors"] += 1

    threads = [threading.Thread(target=vehicle, args=(i, vid), daemon=True) for i, vid in enumerate(tokens)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 30)
    elapsed = time.monotonic() - t0
    counts["per_s"] = round((counts["ok"] + counts["conflict"]) / elapsed, 1)
    counts["confirmed_per_s"] = round(counts["ok"] / elapsed, 1)
    return counts


def _crosshub(
    first: ServeProcess, last: ServeProcess, keys: "dict[str, str]", token: "tuple[str, str]", n: int
) -> "list[float]":
    """RESERVE on the last hub -> RESERVE_NOW at a station linked to the first: seconds, n samples."""
    sids = sorted(keys)[:CROSSHUB_STATIONS]
    deadline = time.monotonic() + 60 + n * 0.2
    links = [_Station(first.url, sid, keys[sid], deadline).start_link() for sid in sids]
    time.sleep(1.5)  # the other hubs learn the stations' homes and views (one beat)
    lat = []
    base = int(time.time()) + 600
    with HubClient(last.url, "vehicle", token[0], token[1], timeout=10) as v:
        for i in range(n):
            sid = sids[i % len(sids)]
            station = links[i % len(sids)]
            start = base + (i // len(sids)) * WINDOW_S  # in order, at most 10 each: inside what a station holds
            sent = time.monotonic()
            _k, (ok, rid, _a, _w) = v.request(K.RESERVE, sid, start, start + WINDOW_S, None)
            if not ok:
                continue
            while rid not in station.got and time.monotonic() < sent + 5:
                time.sleep(0.0005)
            if rid in station.got:
                lat.append(station.got[rid] - sent)
    for s in links:
        s.deadline = 0
    return lat


def _failover(hubs: "list[ServeProcess]", keys: "dict[str, str]", token: "tuple[str, str]") -> "dict[str, Any]":
    """Kill -9 the first hub under a station that lists it first; how long until it is back."""
    first, second, watcher_hub = hubs[0], hubs[1], hubs[-1]
    sid = sorted(keys)[-1]
    station = _Station("%s,%s" % (first.url, second.url), sid, keys[sid], time.monotonic() + 60).start_link()
    with HubClient(watcher_hub.url, "vehicle", token[0], token[1], timeout=10) as v:

        def shown() -> str:
            found = v.request(K.NEAREST, LAT + int(sid[3:]) * 1e-4, LON, 1, None)[1][0]
            return next((s["status"] for s in found if s["id"] == sid), "?")

        t_end = time.monotonic() + 10
        while shown() != "Available" and time.monotonic() < t_end:
            time.sleep(0.05)
        killed = time.monotonic()
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        t_end = killed + 30
        while station.reconnected_at is None and time.monotonic() < t_end:
            time.sleep(0.01)
        seen_offline = False
        while time.monotonic() < t_end:
            status = shown()
            seen_offline = seen_offline or status == "Offline"
            if status == "Available" and station.reconnected_at is not None:
                break
            time.sleep(0.02)
        back = time.monotonic()
    station.deadline = 0
    return {
        "station_on_second_hub_ms": None
        if station.reconnected_at is None
        else round((station.reconnected_at - killed) * 1000, 1),
        "shown_available_again_ms": round((back - killed) * 1000, 1),
    }


def run(opts: "dict[str, Any]") -> "dict[str, Any]":
    db = opts.get("db") or ""
    if not db.startswith(("postgresql://", "postgres://")):
        raise BenchError("--scenario cluster needs --db postgresql://... (several hubs share one PostgreSQL)")
    n_hubs = int(opts.get("hubs") or 3)
    if not 2 <= n_hubs <= 8:
        raise BenchError("--hubs must be 2..8")
    tmp = tempfile.mkdtemp(prefix="evhub-bench-cluster-")
    hubs: "list[ServeProcess]" = []
    try:
        keys, tokens = _provision(db, 40, max(2, min(int(opts.get("connections") or 30), 200)) + 2)
        extra = sorted(tokens)[-2:]
        racers = {v: tokens[v] for v in sorted(tokens)[:-2]}
        hubs = _hubs(tmp, db, n_hubs)
        race = _race(hubs, racers, sorted(keys)[CROSSHUB_STATIONS:-1], float(opts.get("duration") or 10))
        over, confirmed = check_double_booking(db)
        lat = _crosshub(hubs[0], hubs[-1], keys, (extra[0], tokens[extra[0]]), CROSSHUB_STATIONS * 10)
        fail = _failover(hubs, keys, (extra[1], tokens[extra[1]]))
        lat.sort()
        return {
            "scenario": "cluster",
            "hubs": n_hubs,
            "reserve": race,
            "double_bookings": over,
            "confirmed_in_store": confirmed,
            "crosshub_samples": len(lat),
            "crosshub_p50_ms": _percentile_ms(lat, 0.50) if lat else None,
            "crosshub_p99_ms": _percentile_ms(lat, 0.99) if lat else None,
            "failover": fail,
        }
    finally:
        for h in hubs:
            if h.proc.poll() is None:
                h.stop()
        if not opts.get("keep_tmp"):
            shutil.rmtree(tmp, ignore_errors=True)


def summary(r: "dict[str, Any]") -> str:
    race = r["reserve"]
    return "\n".join(
        [
            "scenario cluster, %d hubs on one PostgreSQL" % r["hubs"],
            "  reserve across hubs: %s decided/s, %s confirmed/s (%d ok, %d conflicts, %d errors)"
            % (race["per_s"], race["confirmed_per_s"], race["ok"], race["conflict"], race["errors"]),
            "  double bookings %d (confirmed in the store %d)" % (r["double_bookings"], r["confirmed_in_store"]),
            "  cross-hub RESERVE -> RESERVE_NOW: p50 %s ms  p99 %s ms  (%d samples)"
            % (r["crosshub_p50_ms"], r["crosshub_p99_ms"], r["crosshub_samples"]),
            "  failover after kill -9: station on the second hub in %s ms; shown Available again in %s ms"
            % (r["failover"]["station_on_second_hub_ms"], r["failover"]["shown_available_again_ms"]),
        ]
    )
