"""`evhub serve --db postgresql://...`: the real hub process on the private PostgreSQL cluster, a real
station (the CPython runner) and a vehicle: reserve, charge, COMPLETE, and the books in the database."""

import os
import threading
import time

from charging import QUICK_EV
from firmware.runner import run_chargepoint
from hubproc import HubProcess, evhub
from hub.store.store import SCHEMA_VERSION, Store
from tools.client.hubclient import HubClient
from transport import kinds as K
from waiting import thread as _thread, wait_for as _wait


def _pg_hub(tmp_path, url):
    hub = HubProcess(tmp_path, db=url)
    hub.env.pop("EVHUB_OPERATOR_KEY_FILE")  # a PostgreSQL store keeps the operator key in its settings
    return hub


def test_a_hub_on_postgresql_books_charges_and_records_the_session_in_the_database(tmp_path, pg_database):
    with _pg_hub(tmp_path, pg_database) as hub:
        assert "store: migrated from version 0 to %d" % SCHEMA_VERSION in hub.log()
        assert not any(name.endswith(".lock") for name in os.listdir(tmp_path))  # no SQLite lock for PostgreSQL
        key = hub.add_station("CP-P1", connectors=2)
        token = hub.add_vehicle("V-1")
        host, port = hub.url[len("tcp://") :].split(":")
        cfg = {
            "id": "CP-P1",
            "key": key,
            "hub": {"host": host, "port": int(port)},
            "connectors": 2,
            "meter_interval_s": 1,
            "finishing_s": 1,
        }
        stop = threading.Event()
        t = _thread(run_chargepoint, cfg, stop_event=stop, journal=str(tmp_path / "cp.journal"))
        try:
            _wait(lambda: "station CP-P1: boot" in hub.log(), 10, "BOOT")
            with HubClient(hub.url, "vehicle", "V-1", token) as v:
                start = int(time.time()) + 60
                _k, (ok, rid, _a, _r) = v.request(K.RESERVE, "CP-P1", start, start + 1800)
                assert ok
                v.request(K.START_CHARGE, "CP-P1", rid, QUICK_EV)
                sid = v.wait_event((K.SESSION_STARTED,), timeout=10).fields[0]
                done = v.wait_event((K.COMPLETE,), timeout=30)
        finally:
            stop.set()
            t.join(timeout=10)
        assert done.fields[0] == sid and done.fields[2] == 35 and done.fields[4] == "Complete"
        listed = evhub("sessions", "export", "--db", pg_database, cwd=str(tmp_path), env=hub.env).stdout
        assert sid in listed
    store = Store(pg_database)
    try:
        row = store.get_session(sid)
        assert (row["station_id"], row["vehicle_id"], row["energy_wh"], row["reason"]) == (
            "CP-P1",
            "V-1",
            35,
            "Complete",
        )
        assert row["ended"] is not None and row["reservation_id"] == rid
        assert store.get_reservation(rid)["state"] == "fulfilled"
    finally:
        store.close()


def test_a_second_hub_may_share_a_postgresql_store(tmp_path, pg_database):
    """The SQLite lock refuses a second hub on one file; one PostgreSQL database takes several."""
    first = _pg_hub(tmp_path / "a", pg_database)
    second = _pg_hub(tmp_path / "b", pg_database)
    os.makedirs(first.tmp)
    os.makedirs(second.tmp)
    with first, second:
        assert "hub listening" in first.log() and "hub listening" in second.log()


def test_the_reserve_bench_on_postgresql_reports_both_engines_with_no_double_booking(pg_cluster):
    import json

    res = evhub(
        "bench",
        "--scenario",
        "reserve",
        "--connections",
        "2",
        "--stations",
        "50",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--json",
        "--db",
        pg_cluster.url(),
        timeout=120,
    )
    r = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(r["engines"]) == {"sqlite", "postgresql"} and "password" not in r["db"]
    for engine in ("sqlite", "postgresql"):
        figures = r["engines"][engine]
        assert figures["reserved_ok_per_s"] > 0 and figures["double_bookings"] == 0, (engine, figures)
    assert r["confirmed_in_store"] == r["reserved_ok_all_runs"], "every acknowledged reservation is in PostgreSQL"
    from tools.bench.report import render

    shown = [ln.split()[0] for ln in render(r).splitlines() if "confirmed" in ln and "/s, decided" in ln]
    assert shown == ["sqlite", "postgresql"], "the text report puts both engines side by side"
