"""Faults, nothing lost: kill -9 under load, links cut mid-session, a noisy serial line,
hub restarts, stations that go silent. Real processes, loopback only, bounded in time."""

import json
import os
import random
import re
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time


from charging import QUICK_EV
from firmware.runner import Fleet, run_chargepoint
from fw_ptypair import PtyPair
from hubproc import REPO, HubProcess, evhub
from tools.client.hubclient import HubClient, HubError
from transport import kinds as K
from waiting import thread as _thread, wait_for as _wait


def _listing(hub):
    res = evhub("stations", "list", "--hub", hub.url, "--db", hub.db, "--json", check=False)
    return {s["id"]: s for s in json.loads(res.stdout)} if res.returncode == 0 else {}


def _host_port(url):
    host, port = url[len("tcp://") :].split(":")
    return host, int(port)


def _sessions(db, station_id):
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT session_id, energy_wh, ended FROM sessions WHERE station_id = ? AND ended IS NOT NULL",
            (station_id,),
        ).fetchall()
    finally:
        con.close()


# --- kill -9 under reservation load --------------------------------------------------------------


def test_kill_9_under_reservation_load_loses_no_acknowledged_reservation_and_books_none_twice(tmp_path):
    from hub.store.store import Store

    n_vehicles, n_stations = 8, 4
    config = tmp_path / "hub.toml"  # hundreds of reservations per vehicle: lift the per-vehicle cap for this load
    config.write_text("[hub]\nmax_open_reservations_per_vehicle = 100000\n")
    with HubProcess(tmp_path, extra_args=["--config", str(config)]) as hub:
        store = Store(hub.db)
        for i in range(n_stations):
            store.add_station("CP-%d" % i, -12.2 - i * 0.01, -38.9, 1, 22.0)
        tokens = {"V-%d" % i: store.add_vehicle("V-%d" % i) for i in range(n_vehicles)}
        store.close()
        first = next(iter(tokens))

        def stations_known():  # stations provisioned while the hub runs are picked up within a tick
            with HubClient(hub.url, "vehicle", first, tokens[first]) as v:
                _k, (found,) = v.request(K.NEAREST, -12.2, -38.9, n_stations + 1, None)
            return len(found) == n_stations

        _wait(stations_known, 10, "the hub to list the %d stations provisioned while it runs" % n_stations)
        acked = {vid: [] for vid in tokens}
        stop = threading.Event()
        base = int(time.time()) + 3600

        def load(vid, token, offset):
            rng = random.Random(offset)
            try:
                with HubClient(hub.url, "vehicle", vid, token, timeout=5) as v:
                    while not stop.is_set():
                        # Everyone competes for the same few slots, so conflicts are frequent; starts on a
                        # quarter of the window, so a double booking can also be an overlap with another start.
                        start = base + rng.randrange(1600) * 450
                        _k, fields = v.request(K.RESERVE, "CP-%d" % rng.randrange(n_stations), start, start + 1800)
                        if fields[0]:
                            acked[vid].append(fields[1])
            except HubError:
                pass  # the hub was killed under us: expected

        threads = [_thread(load, vid, tok, i) for i, (vid, tok) in enumerate(tokens.items())]
        time.sleep(2.0)  # the load's duration (README: killed after 2 s), not a wait for a condition
        hub.kill9()
        stop.set()
        for t in threads:
            t.join(timeout=10)
        total_acked = sum(len(v) for v in acked.values())
        assert total_acked > 50, "the load reached the hub"
        every_ack = [rid for v in acked.values() for rid in v]
        assert len(every_ack) == len(set(every_ack)), "one reservation was acknowledged to two requests"
        hub.restart()
        for vid, token in tokens.items():
            with HubClient(hub.url, "vehicle", vid, token) as v:
                _k, (mine,) = v.request(K.LIST_RESERVATIONS)
            ids = [r["reservation_id"] for r in mine]
            missing = set(acked[vid]) - set(ids)
            assert not missing, "acknowledged reservations lost for %s: %s" % (vid, sorted(missing))
    con = sqlite3.connect(hub.db)
    rows = con.execute("SELECT station_id, start, end FROM reservations WHERE state = 'confirmed'").fetchall()
    con.close()
    overlaps = [(a, b) for a, b in zip(sorted(rows), sorted(rows)[1:]) if a[0] == b[0] and b[1] < a[2]]
    assert not overlaps, "single-connector windows booked twice (overlapping): %s" % overlaps[:3]
    print(
        "fault-figures kill9: %d reservations acknowledged before kill -9, %d confirmed after restart, 0 lost, 0 doubled"
        % (total_acked, len(rows))
    )


# --- a link cut mid-session -------------------------------------------------------------------------


class CuttableProxy:
    """A loopback TCP proxy in front of the hub whose connections we can sever (a lost link)."""

    def __init__(self, target):
        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.pairs = []
        self.blocked = False
        self._stop = False
        _thread(self._accept)

    def _accept(self):
        self.listener.settimeout(0.2)
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            if self.blocked:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.pairs.append((client, upstream))
            _thread(self._pipe, client, upstream)
            _thread(self._pipe, upstream, client)

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def cut(self, block=True):
        self.blocked = block
        pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    # An abortive close (RST): the link is gone, as when a cable or a NAT drops it.
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        return len(pairs)

    def close(self):
        self._stop = True
        self.cut()
        self.listener.close()


def test_a_station_losing_its_link_mid_session_records_the_session_exactly_once(tmp_path):
    slow_ev = {"max_kw": 50.0, "capacity_kwh": 0.2, "soc": 0.2, "target_soc": 0.9}  # 140 Wh, ~23 s at 22 kW
    # A 2 s heartbeat: were the cut unseen at the socket, 3 missed heartbeats would still show it.
    with HubProcess(tmp_path, extra_args=["--heartbeat", "2"]) as hub:
        key = hub.add_station("CP-L")
        token = hub.add_vehicle("V-L")
        proxy = CuttableProxy(_host_port(hub.url))
        cfg = {
            "id": "CP-L",
            "key": key,
            "hub": {"host": "127.0.0.1", "port": proxy.port},
            "meter_interval_s": 1,
            "finishing_s": 1,
        }
        fleet = Fleet([cfg], journal_paths={"CP-L": str(tmp_path / "cp.journal")})
        journal = fleet.by_id["CP-L"].journal
        stop = threading.Event()
        t = _thread(fleet.run, stop)
        try:
            _wait(lambda: "station CP-L: boot" in hub.log(), 15, "BOOT")
            with HubClient(hub.url, "vehicle", "V-L", token) as v:
                v.request(K.RESERVE, "CP-L", int(time.time()), int(time.time()) + 3600)  # a start needs one (issue 13)
                v.request(K.START_CHARGE, "CP-L", None, slow_ev)
                sid = v.wait_event((K.SESSION_STARTED,), timeout=10).fields[0]
                assert proxy.cut(block=True) >= 1  # the link is gone mid-session; the station keeps charging
                _wait(lambda: "station CP-L: offline" in hub.log(), 15, "the hub noticing the lost link")
                _wait(
                    lambda: any(k == K.SESSION_END for k, _f in journal.pending()),
                    60,
                    "the session to end on the station while it cannot reach the hub",
                )
                assert _sessions(hub.db, "CP-L") == []
                proxy.blocked = False  # the link returns
                _wait(lambda: len(_sessions(hub.db, "CP-L")) == 1, 75, "the replayed session end")
                # Acked: the station's journal drops the record, so it has nothing left to send twice.
                _wait(lambda: journal.pending() == [], 15, "the hub's ack of the replayed session end")
        finally:
            stop.set()
            t.join(timeout=10)
            proxy.close()
        rows = _sessions(hub.db, "CP-L")
        assert len(rows) == 1 and rows[0][0] == sid and rows[0][1] == 140


# --- a noisy serial line -------------------------------------------------------------------------------


class NoisyPtyPair(PtyPair):
    """PtyPair whose relay corrupts a fraction of the bytes in both directions."""

    def __init__(self, rate, seed=7):
        self.rate = rate
        self.rng = random.Random(seed)
        self.corrupted = 0
        PtyPair.__init__(self)

    def carry(self, data):
        data = bytearray(data)
        for i in range(len(data)):
            if self.rng.random() < self.rate:
                data[i] ^= 1 << self.rng.randrange(8)
                self.corrupted += 1
        return bytes(data)


def _start_over_a_noisy_line(hub, vehicle, station_id, ev):
    """START_CHARGE until the station has taken it; returns the SESSION_STARTED event (or None).

    The hub relays it as REMOTE_START (an ~90-byte frame: about one in two is lost to 1% noise) and
    reports a lost one only after its own 15 s request timeout, so the vehicle asks again after a
    few seconds, but only while nothing shows the station took a previous one: no ACK, no refusal
    (already charging), no SESSION_STARTED, no status change at the hub. A start that arrived
    after the first session had ended would be a second session."""
    now = int(time.time())
    vehicle.request(K.RESERVE, station_id, now, now + 3600)  # the hub honours a start only for its reservation
    vehicle.timeout = 4
    for _attempt in range(25):
        if any(e.kind == K.SESSION_STARTED for e in vehicle.events):
            break
        if re.search(r"station %s: connector 1 \w+ -> (Preparing|Charging)" % station_id, hub.log()):
            break
        try:
            vehicle.request(K.START_CHARGE, station_id, None, ev)
            break  # ACKed: the station took it
        except HubError as exc:
            vehicle.last_refusal = str(exc)
            if "did not answer" in str(exc):
                continue
            if re.search(r"already|busy|charging|no free connector", str(exc), re.I):
                break  # refused by the station: a previous start got there
            # Refused for a passing reason (the station still learning its RESERVE_NOW over the noise,
            # or a handshake restarted by a lost frame): ask again shortly.
            time.sleep(1)
    return vehicle.wait_event((K.SESSION_STARTED,), timeout=60)


def test_a_serial_line_with_one_percent_corrupted_bytes_accepts_no_corrupt_message_and_keeps_working(tmp_path):
    pair = NoisyPtyPair(rate=0.01)
    try:
        with HubProcess(tmp_path, extra_args=["--serial", pair.path1]) as hub:
            key = hub.add_station("CP-N")
            token = hub.add_vehicle("V-N")
            cfg = {"id": "CP-N", "key": key, "serial": pair.path2, "meter_interval_s": 1, "finishing_s": 1}
            stop = threading.Event()
            t = _thread(run_chargepoint, cfg, stop_event=stop, journal=str(tmp_path / "n.journal"))
            try:
                _wait(lambda: "station CP-N: boot" in hub.log(), 120, "BOOT over the noisy line")
                with HubClient(hub.url, "vehicle", "V-N", token, timeout=20) as v:
                    started = _start_over_a_noisy_line(hub, v, "CP-N", QUICK_EV)
                    assert started is not None, "no session started over the noisy line (last refusal: %s)\n%s" % (
                        getattr(v, "last_refusal", None),
                        hub.log()[-4000:],
                    )
                    # The station retries its unacknowledged records until the hub has them.
                    _wait(lambda: len(_sessions(hub.db, "CP-N")) == 1, 120, "the session record")
            finally:
                stop.set()
                t.join(timeout=10)
            assert pair.corrupted > 0
            rows = _sessions(hub.db, "CP-N")
            assert len(rows) == 1 and rows[0][1] == 35
            log = hub.log()
            # CRC-32 catches the damage before decoding: no message with a corrupted field got through.
            assert "bad_field" not in log and "undecodable" not in log and "Traceback" not in log
    finally:
        pair.close()


# --- hub restart ----------------------------------------------------------------------------------------


RESTART_BACK_S = 5  # the README's fault table: measured, see the figure the test prints


def test_after_a_hub_restart_every_station_reconnects_within_the_backoff_cap_and_statuses_converge(tmp_path):
    n = 10
    with HubProcess(tmp_path) as hub:
        host, port = _host_port(hub.url)
        configs = [
            {
                "id": "CP-%02d" % i,
                "key": hub.add_station("CP-%02d" % i, lat=-12.2 + i * 0.01),
                "hub": {"host": host, "port": port},
                "lat": -12.2 + i * 0.01,
            }
            for i in range(n)
        ]
        fleet = Fleet(configs)
        stop = threading.Event()
        t = _thread(fleet.run, stop)
        try:
            _wait(lambda: sum(s["status"] == "Available" for s in _listing(hub).values()) == n, 30, "all Available")
            hub.kill9()
            time.sleep(2)  # the hub stays down 2 s (the fault), not a wait for a condition
            hub.restart()
            began = time.monotonic()
            _wait(
                lambda: sum(s["status"] == "Available" for s in _listing(hub).values()) == n,
                75,
                "every station back and Available",
            )
            took = time.monotonic() - began
            print("fault-figures restart: %d stations back and Available %.1f s after the restart" % (n, took))
            assert took < RESTART_BACK_S, "every station back and Available within %d s (README)" % RESTART_BACK_S
        finally:
            stop.set()
            t.join(timeout=10)


# --- silence -----------------------------------------------------------------------------------------------


def test_a_station_that_goes_silent_is_shown_offline_within_three_heartbeats(tmp_path):
    with HubProcess(tmp_path, extra_args=["--heartbeat", "1"]) as hub:
        key = hub.add_station("CP-Q")
        env = dict(os.environ, PYTHONPATH=REPO)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "chargepoint",
                "--id",
                "CP-Q",
                "--key",
                key,
                "--hub",
                hub.url,
                "--journal",
                "none",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(lambda: _listing(hub).get("CP-Q", {}).get("status") == "Available", 20, "CP-Q Available")
            proc.send_signal(signal.SIGSTOP)  # alive, link open, but saying nothing
            stopped = time.monotonic()
            _wait(lambda: _listing(hub).get("CP-Q", {}).get("status") == "Offline", 10, "CP-Q Offline")
            took = time.monotonic() - stopped
            print("fault-figures silence: shown Offline %.1f s after SIGSTOP (heartbeat 1 s)" % took)
            # 3 heartbeats of 1 s, plus the hub's 1 s tick and one listing round trip (README)
            assert took < 3 + 2.5
            proc.send_signal(signal.SIGCONT)
            _wait(lambda: _listing(hub).get("CP-Q", {}).get("status") == "Available", 70, "CP-Q back")
        finally:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            proc.wait(timeout=10)
