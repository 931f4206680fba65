"""Provisioned capacity and what a station reports never silently diverge (issue 17, Wrong results #2)."""

import contextlib
import os
import sys
import time

from hubproc import HubProcess
from procs import LoggedProcess
from test_http_api import TOKEN, HttpHub
from tools.client.hubclient import HubClient
from transport import kinds as K
from waiting import wait_for


def _reserve(hub, start, minutes=40):
    status, _h, made = hub.request(
        "POST",
        "/api/reservations",
        token=TOKEN,
        body={"station_id": "CP-1", "vehicle_id": "V-1", "start": start, "end": start + minutes * 60},
    )
    assert status == 201, made
    return made["reservation"]


def test_a_station_booting_with_fewer_connectors_and_more_power_is_warned_shown_and_held_to_the_safe_capacity(tmp_path):
    with HttpHub(tmp_path) as hub:
        key = hub.add_station("CP-1", connectors=2, max_kw=7.4)
        start = int(time.time()) + 3600
        first = _reserve(hub, start)
        second = _reserve(hub, start + 600)  # overlaps the first: takes connector 2
        assert (first["connector"], second["connector"]) == (1, 2)
        status, _h, _b = hub.request("DELETE", "/api/reservations/%d" % first["reservation_id"], token=TOKEN)
        assert status == 200
        c = HubClient(hub.url, "station", "CP-1", key).connect()
        with contextlib.closing(c):
            c.request(K.BOOT, -12.2664, -38.9663, 1, 22.0, "test-fw")  # the CLI's old defaults
            c.request(K.STATUS, 1, "Available", None)
            told = c.wait_event((K.CONFIGURE,), timeout=5)  # the station is held to what was provisioned
            assert told is not None, c.events
            assert list(told.fields) == ["max_kw", 7.4]
            cp1 = hub.wait_for("/api/stations", lambda b: b["stations"][0]["online"])["stations"][0]
            assert (cp1["connectors"], cp1["max_kw"]) == (1, 7.4)
            assert cp1["mismatch"] == {
                "provisioned": {"connectors": 2, "max_kw": 7.4},
                "reported": {"connectors": 1, "max_kw": 22.0},
                "used": {"connectors": 1, "max_kw": 7.4},
            }
            # the book hears the capacity from the registry after the station shows online: wait for it
            moved = hub.wait_for(
                "/api/reservations/%d" % second["reservation_id"], lambda b: b["reservation"]["connector"] == 1
            )["reservation"]
            assert (moved["state"], moved["connector"]) == ("confirmed", 1)  # not stranded on connector 2
            sent = [c.wait_event((K.RESERVE_NOW,), timeout=5) for _ in range(2)]  # at link up, then after the move
            assert [m.fields[:2] for m in sent if m is not None][-1] == [
                second["reservation_id"],
                1,
            ]  # the station hears it
        log = hub.log()
        assert "WARNING" in log and "capacity mismatch" in log and "moved from connector 2 to 1" in log
        assert "Traceback" not in log
    with HubProcess(tmp_path, db=hub.db) as again:  # the move survives a restart
        from hub.store.store import Store

        store = Store(again.db)
        try:
            assert store.get_reservation(second["reservation_id"])["connector"] == 1
        finally:
            store.close()


def test_a_station_booting_as_provisioned_shows_no_mismatch(tmp_path):
    with HttpHub(tmp_path) as hub:
        key = hub.add_station("CP-1", connectors=2, max_kw=7.4)
        c = HubClient(hub.url, "station", "CP-1", key).connect()
        with contextlib.closing(c):
            c.request(K.BOOT, -12.2664, -38.9663, 2, 7.4, "test-fw")
            cp1 = hub.wait_for("/api/stations", lambda b: b["stations"][0]["online"])["stations"][0]
            assert (cp1["connectors"], cp1["max_kw"], cp1["mismatch"]) == (2, 7.4, None)
        assert "capacity mismatch" not in hub.log()


def test_evhub_chargepoint_without_capacity_flags_adopts_what_was_provisioned(tmp_path):
    """The README's `stations add --connectors 2 --max-kw 7.4` then `evhub chargepoint --id CP-1 --key ...`."""
    with HubProcess(tmp_path, db=str(tmp_path / "evhub.db")) as hub:  # ./evhub.db, as `evhub serve` defaults to
        key = hub.add_station("CP-1", connectors=2, max_kw=7.4)
        (tmp_path / "cp1.key").write_text(key + "\n")
        os.chmod(tmp_path / "cp1.key", 0o600)
        env = dict(
            os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), EVHUB_HUB=hub.url
        )
        env.pop("EVHUB_DB", None)
        cp = LoggedProcess(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "chargepoint",
                "--id",
                "CP-1",
                "--key-file",
                "cp1.key",
                "--journal",
                "none",
                "--duration",
                "30",
            ],
            str(tmp_path / "cp.log"),
            cwd=str(tmp_path),
            env=env,
        )
        try:
            wait_for(lambda: "station CP-1: boot" in hub.log() or cp.proc.poll() is not None, 20, "the station's boot")
            assert "station CP-1: boot" in hub.log(), (cp.output(), hub.log())
        finally:
            out = cp.stop()
        assert "as provisioned in" in out and "connectors=2" in out, out
        log = hub.log()
        assert "connectors=2 max_kw=7.4" in log, log
        assert "capacity mismatch" not in log
