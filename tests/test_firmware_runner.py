"""The CPython runner and `evhub chargepoint`: bad input, and real stations against the real hub."""

import re
import sqlite3
import threading
import time

import pytest

from firmware.chargepoint import ChargePoint
from firmware.runner import Fleet, run_chargepoint, sim_wall
from charging import QUICK_EV, charge_to_complete
from fw_hub import EPOCH, KEY, FakeClock, FakeHub, Wire
from fw_ptypair import PtyPair
from hubproc import HubProcess
from tools import cli
from tools.client.hubclient import HubClient
from transport import codec
from transport import kinds as K
from waiting import thread as _thread, wait_for as _wait


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--id", "CP-1", "--key", "k", "--hub", "http://x:1"], "scheme must be tcp://"),
        (["--id", "CP-1", "--key", "k", "--hub", "tcp://host"], "HOST:PORT"),
        (["--id", "CP-1", "--key", "k", "--connectors", "0"], "connectors must be"),
        (["--id", "CP-1", "--key", "k", "--lat", "100"], "lat must be"),
        (["--id", "CP-1", "--key", "k", "--max-kw", "-3"], "max_kw must be"),
        (["--id", "CP-1", "--key", "k", "--speedup", "0"], "--speedup must be positive"),
        (["--id", "CP-1"], "a key is needed"),
        (["--id", "", "--key", "k"], "id must be"),
        (["--id", "CP-1", "--key", "k", "--config", "/nonexistent/cfg.json"], "cannot read --config"),
    ],
)
def test_bad_chargepoint_arguments_exit_2_with_a_clear_message(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("EVHUB_KEY", raising=False)
    monkeypatch.delenv("EVHUB_HUB", raising=False)
    assert cli.main(["chargepoint"] + argv + ["--journal", "none"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_config_file_that_is_not_json_is_refused(tmp_path, capsys):
    bad = tmp_path / "c.json"
    bad.write_text("{id: CP-1")
    assert cli.main(["chargepoint", "--id", "CP-1", "--key", "k", "--config", str(bad), "--journal", "none"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_the_hub_url_comes_from_the_environment_when_not_given(monkeypatch):
    from tools.commands.chargepoint import build_config

    monkeypatch.setenv("EVHUB_HUB", "tcp://10.1.2.3:9000")

    class Args:
        config = None
        id = "CP-1"
        key = "k"
        lat = lon = connectors = max_kw = offline_policy = None
        serial = None
        hub = None
        baud = None

    assert build_config(Args())["hub"] == {"host": "10.1.2.3", "port": 9000}


def test_the_simulated_wall_clock_runs_faster_by_the_speedup():
    wall = sim_wall(60.0, epoch0=time.time())
    a = wall()
    time.sleep(0.05)
    assert 2.0 < wall() - a < 6.0


def test_a_runner_station_charges_a_reserving_vehicle_against_the_real_hub(tmp_path):
    with HubProcess(tmp_path) as hub:
        key = hub.add_station("CP-R1", connectors=2)
        token = hub.add_vehicle("V-1")
        host, port = hub.url[len("tcp://") :].split(":")
        cfg = {
            "id": "CP-R1",
            "key": key,
            "hub": {"host": host, "port": int(port)},
            "connectors": 2,
            "meter_interval_s": 1,
            "finishing_s": 1,
        }
        stop = threading.Event()
        t = _thread(run_chargepoint, cfg, stop_event=stop, journal=str(tmp_path / "cp.journal"))
        try:
            _wait(lambda: "station CP-R1: boot" in hub.log(), 10, "BOOT")
            with HubClient(hub.url, "vehicle", "V-1", token) as v:
                start = int(time.time()) + 60
                _k, (ok, rid, _a, _r) = v.request(K.RESERVE, "CP-R1", start, start + 1800)
                assert ok
                v.request(K.START_CHARGE, "CP-R1", rid, QUICK_EV)
                sid = v.wait_event((K.SESSION_STARTED,), timeout=10).fields[0]
                progress = v.wait_event((K.CHARGE_PROGRESS,), timeout=10)
                done = v.wait_event((K.COMPLETE,), timeout=30)
        finally:
            stop.set()
            t.join(timeout=10)
        assert progress.fields[0] == sid and 0 < progress.fields[3] <= 22000
        assert done.fields[0] == sid and done.fields[2] == 35 and done.fields[4] == "Complete"
        changes = re.findall(r"station CP-R1: connector 1 (\w+) -> (\w+)", hub.log())
        assert ("Reserved", "Preparing") in changes and ("Charging", "Finishing") in changes


def test_many_stations_run_in_one_thread_against_the_real_hub(tmp_path):
    n = 25
    with HubProcess(tmp_path) as hub:
        host, port = hub.url[len("tcp://") :].split(":")
        configs = []
        for i in range(n):
            sid = "CP-M%02d" % i
            key = hub.add_station(sid, lat=-12.2 + i * 0.01)
            configs.append({"id": sid, "key": key, "hub": {"host": host, "port": int(port)}, "lat": -12.2 + i * 0.01})
        fleet = Fleet(configs, speedup=60.0)
        stop = threading.Event()
        before = threading.active_count()
        t = _thread(fleet.run, stop)
        try:
            _wait(lambda: hub.log().count("boot firmware=") >= n, 20, "every station's BOOT")
            assert all(d.cp.usable for d in fleet.devices)
            running = threading.active_count()  # while all 25 stations are connected and served
        finally:
            stop.set()
            t.join(timeout=10)
        assert running - before == 1, "one loop thread for %d stations, not one per station" % n


def test_a_runner_station_on_a_serial_line_reaches_the_hub(tmp_path):
    pair = PtyPair()
    try:
        with HubProcess(tmp_path, extra_args=["--serial", pair.path1]) as hub:
            key = hub.add_station("CP-S1")
            token = hub.add_vehicle("V-2")
            cfg = {"id": "CP-S1", "key": key, "serial": pair.path2, "meter_interval_s": 1, "finishing_s": 1}
            stop = threading.Event()
            t = _thread(run_chargepoint, cfg, stop_event=stop)
            try:
                _wait(lambda: "station CP-S1: boot" in hub.log(), 15, "BOOT over serial")
                with HubClient(hub.url, "vehicle", "V-2", token) as v:
                    done = charge_to_complete(v, "CP-S1")
            finally:
                stop.set()
                t.join(timeout=10)
            assert done.fields[4] == "Complete" and done.fields[2] == 35
            con = sqlite3.connect(hub.db)
            assert (
                con.execute("SELECT count(*) FROM sessions WHERE station_id='CP-S1' AND ended IS NOT NULL").fetchone()[
                    0
                ]
                == 1
            )
            con.close()
    finally:
        pair.close()


def test_a_serial_station_whose_hub_restarted_says_hello_again_at_its_next_ping(tmp_path):
    """The hub process dies and comes back on the same serial line: its new end of the line knows no
    session and answers the station's next ping with not_authenticated. The station must treat that
    as "the hub forgot me" and start a new handshake at once, not ping on (each refusal counts as
    hearing from the hub, so it would never even go silent)."""
    heartbeat = 2
    pair = PtyPair()
    try:
        with HubProcess(tmp_path, extra_args=["--serial", pair.path1, "--heartbeat", str(heartbeat)]) as hub:
            key = hub.add_station("CP-RH")
            cfg = {"id": "CP-RH", "key": key, "serial": pair.path2}
            fleet = Fleet([cfg])
            stop = threading.Event()
            t = _thread(fleet.run, stop)
            try:
                _wait(lambda: "station CP-RH: boot" in hub.log(), 15, "BOOT over serial")
                cp = fleet.by_id["CP-RH"].cp
                hub.kill9()  # returns once the process is gone
                offset = len(hub.log())
                hub.restart()
                back = time.monotonic()
                _wait(
                    lambda: "station CP-RH: boot" in hub.log()[offset:], 3 * heartbeat + 5, "BOOT to the restarted hub"
                )
                took = time.monotonic() - back
                assert cp.usable
            finally:
                stop.set()
                t.join(timeout=10)
            # at most one heartbeat until the next ping is refused, then the handshake: well under 3 heartbeats
            assert took < 2 * heartbeat + 1, took
            assert cp.rehellos >= 1 and cp.link.connects == 2  # a new handshake on the open line, no reconnect
    finally:
        pair.close()


class SerialLineHub(FakeHub):
    """The hub's end of a serial line (hub/gateway.SerialLine + hub/link.Link rehello): a refused
    session is followed by a fresh one on the same wire, and a HELLO restarts the handshake.
    What an old session still had to say (its refusal) goes out first, as the real link flushes it."""

    sent = ()

    def receive(self, obj):
        if self.server.state == "closed" or (obj[0] == K.HELLO and self.server.state != "wait_hello"):
            self.sent = list(self.sent) + self.server.take_outgoing()
            self.accept()
        FakeHub.receive(self, obj)

    def take_outgoing(self):
        out = list(self.sent) + FakeHub.take_outgoing(self)
        self.sent = ()
        return out


def test_a_station_forgotten_by_its_hub_handshakes_again_on_the_same_line_and_ignores_stale_refusals():
    clock = FakeClock()
    wall = lambda: EPOCH + int(clock.t)  # noqa: E731
    cp = ChargePoint({"id": "CP-1", "key": KEY}, clock, wall, rand=lambda: 32768)
    hub = SerialLineHub(clock, wall)
    wire = Wire(cp, hub, clock, codec)
    wire.start()
    assert cp.usable and hub.boots == 1
    hub.accept()  # the hub process restarted: its end of the line knows no session
    cp.plug(1, "V-1")  # STATUS Preparing, queued now ...
    wire.step(cp.session.heartbeat_s)  # ... and a PING: both refused with not_authenticated
    assert wire.connected, "the line is kept: no disconnect, no backoff"
    wire.step(1.0)
    assert cp.usable and hub.boots == 2 and cp.rehellos == 1 and cp.link.connects == 2
    assert hub.status(1) == "Preparing"  # statuses are reported again after the new BOOT


class LossyLineHub(SerialLineHub):
    """A serial-line hub end that never hears the next `lose` frames (noise ate them)."""

    lose = 0
    lose_kind = None  # None: any frame

    def receive(self, obj):
        if self.lose and (self.lose_kind is None or obj[0] == self.lose_kind):
            self.lose -= 1
            return
        SerialLineHub.receive(self, obj)


def _serial_station(**cfg):
    clock = FakeClock()
    wall = lambda: EPOCH + int(clock.t)  # noqa: E731
    config = {"id": "CP-1", "key": KEY, "serial": "/dev/ttyS9"}
    config.update(cfg)
    cp = ChargePoint(config, clock, wall, rand=lambda: 32768)
    hub = LossyLineHub(clock, wall)
    return cp, hub, Wire(cp, hub, clock, codec)


def test_on_a_serial_line_a_lost_hello_is_sent_again_within_seconds_on_the_same_line():
    cp, hub, wire = _serial_station()
    hub.lose = 1  # the first HELLO
    wire.start()
    assert not cp.usable
    wire.run(3.0, dt=0.25)  # the serial handshake timeout is 2 s, then HELLO again at once
    assert cp.usable and hub.boots == 1 and cp.hellos_resent == 1
    assert wire.connected and cp.link.failures == 0, "no close, no backoff"


def test_on_a_serial_line_a_lost_request_is_sent_again_after_two_seconds_unless_configured():
    cp, hub, wire = _serial_station()
    wire.start()
    assert cp.usable
    cp.report_all()
    hub.lose = 1  # the STATUS
    wire.step(0.0)
    n = len(hub.statuses)
    wire.run(2.25, dt=0.25)
    assert len(hub.statuses) == n + 1, "the lost STATUS went again after 2 s"
    cp, hub, wire = _serial_station(request_timeout_s=10)
    assert cp.request_timeout_s == 10 and cp.handshake_timeout_s == 6
    tcp = ChargePoint({"id": "CP-1", "key": KEY, "hub": {"host": "10.0.0.1", "port": 7878}}, FakeClock(), lambda: EPOCH)
    assert tcp.request_timeout_s == 10 and not tcp.on_serial


def test_on_a_serial_line_boot_is_resent_until_answered_without_a_new_handshake():
    cp, hub, wire = _serial_station()
    hub.lose, hub.lose_kind = 4, K.BOOT  # more than the 3 tries a TCP link gets
    wire.start()
    wire.run(9.0, dt=0.25)
    assert cp.usable and hub.boots == 1 and hub.links == 1
    assert wire.connected and cp.link.failures == 0 and cp.hellos_resent == 0
