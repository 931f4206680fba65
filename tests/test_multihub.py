"""Three real hubs on one private PostgreSQL: one network, no double booking, requests across hubs.

Every hub is a real `evhub serve --db postgresql://...` process; the stations are the firmware core's
CPython runner; vehicles are real clients. Nothing here is faked.
"""

import json
import re
import threading
import urllib.request
import time

import pytest

from hubproc import HubProcess
from test_reservation_sync import Stations, tcp_config
from tools.client.hubclient import HubClient
from transport import kinds as K
from waiting import wait_for

pytestmark = pytest.mark.usefixtures("pg_cluster")


@pytest.fixture
def three_hubs(tmp_path, pg_database):
    hubs = []
    try:
        for name in "ABC":
            d = tmp_path / name
            d.mkdir()
            http = ["--http", "127.0.0.1:0"] if name == "C" else []  # hub C's HTTP API must show the whole network
            hubs.append(HubProcess(d, db=pg_database, extra_args=["--hub-id", name] + http).start())
        yield hubs
    finally:
        for h in hubs:
            h.stop()


def api_stations(hub):
    """GET /api/stations on a hub started with --http (loopback reads need no token)."""
    web = re.search(r"http api listening on (http://[\d.]+:\d+)", hub.log()).group(1)
    with urllib.request.urlopen(web + "/api/stations", timeout=5) as res:
        return {s["id"]: s for s in json.load(res)["stations"]}


def nearest_on(hub, token, vehicle_id):
    with HubClient(hub.url, "vehicle", vehicle_id, token) as v:
        _k, (found,) = v.request(K.NEAREST, -12.2664, -38.9663, 5, None)
    return {s["id"]: s for s in found}


def test_sixty_vehicles_on_three_hubs_racing_for_one_connector_get_exactly_one_reservation(three_hubs):
    a, b, c = three_hubs
    a.add_station("CP-1", connectors=1)
    tokens = {"V-%02d" % i: a.add_vehicle("V-%02d" % i) for i in range(60)}
    start = int(time.time()) + 3600
    results: "dict[str, bool]" = {}
    go = threading.Event()

    def race(vehicle_id, hub):
        with HubClient(hub.url, "vehicle", vehicle_id, tokens[vehicle_id]) as v:
            go.wait(10)
            _k, (ok, _rid, alts, _why) = v.request(K.RESERVE, "CP-1", start, start + 1800, None)
            results[vehicle_id] = ok

    threads = [threading.Thread(target=race, args=(vid, three_hubs[i % 3])) for i, vid in enumerate(tokens)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(30)
    assert len(results) == 60
    assert sorted(results.values()).count(True) == 1, results


def test_a_reservation_made_on_hub_c_reaches_a_station_on_hub_a_and_every_hub_shows_it_reserved(three_hubs):
    a, b, c = three_hubs
    key = a.add_station("CP-1", connectors=1)
    token = a.add_vehicle("V-1")
    with Stations([tcp_config(a, "CP-1", key)]) as stations:
        wait_for(
            lambda: nearest_on(c, token, "V-1").get("CP-1", {}).get("status") == "Available",
            10,
            "hub C sees hub A's station Available",
        )
        start = int(time.time()) + 120
        with HubClient(c.url, "vehicle", "V-1", token) as v:
            _k, (ok, rid, _a, _w) = v.request(K.RESERVE, "CP-1", start, start + 1800, None)
        assert ok
        wait_for(lambda: stations.held("CP-1") == [rid], 5, "the station on hub A holds the reservation made on C")
        wait_for(lambda: api_stations(c)["CP-1"]["status"] == "Reserved", 5, "hub C's HTTP API shows it Reserved")
        for hub in (a, b, c):
            wait_for(
                lambda: nearest_on(hub, token, "V-1")["CP-1"]["status"] == "Reserved",
                5,
                "every hub shows CP-1 Reserved",
            )


def test_a_hub_killed_mid_session_loses_nothing_its_station_moves_and_the_session_is_recorded_once(
    three_hubs, pg_database
):
    import psycopg

    a, b, c = three_hubs
    key = a.add_station("CP-1", connectors=1)
    token = a.add_vehicle("V-1")
    watcher = a.add_vehicle("V-W")  # asks NEAREST on its own link (a second V-1 link would replace the first)
    cfg = tcp_config(a, "CP-1", key)
    cfg["hub"] = [tcp_config(h, "CP-1", key)["hub"] for h in (a, b)]  # A first, then B
    slow_ev = {"max_kw": 50.0, "capacity_kwh": 0.15, "soc": 0.2, "target_soc": 0.9}  # 105 Wh, ~17 s at 22 kW
    with Stations([cfg]):
        wait_for(
            lambda: nearest_on(c, watcher, "V-W").get("CP-1", {}).get("status") == "Available",
            10,
            "hub C sees the station on hub A",
        )
        with HubClient(c.url, "vehicle", "V-1", token, timeout=20) as v:
            now = int(time.time())
            v.request(K.RESERVE, "CP-1", now, now + 3600)
            v.request(K.START_CHARGE, "CP-1", None, slow_ev)  # forwarded from C to A, the station's home
            started = v.wait_event((K.SESSION_STARTED,), timeout=15)
            assert started is not None, "no SESSION_STARTED reached the vehicle on hub C"
            session_id = started.fields[0]
            a.kill9()
            wait_for(
                lambda: nearest_on(c, watcher, "V-W")["CP-1"]["status"] in ("Occupied", "Offline"),
                5,
                "hub C shows the station after A died",
            )
            complete = v.wait_event((K.COMPLETE,), timeout=60)
            assert complete is not None and complete.fields[0] == session_id, complete
    with psycopg.connect(pg_database) as db:
        rows = db.execute(
            "SELECT station_id, vehicle_id, energy_wh, ended, reason FROM sessions WHERE session_id = %s",
            (session_id,),
        ).fetchall()
        home = db.execute("SELECT hub_id FROM station_home WHERE station_id = 'CP-1'").fetchall()
    assert len(rows) == 1
    station_id, vehicle_id, energy_wh, ended, reason = rows[0]
    assert (station_id, vehicle_id, ended is not None) == ("CP-1", "V-1", True)
    assert energy_wh >= 100 and reason != "PowerLoss", rows
    assert "B" in b.log() and "station CP-1" in b.log()
    assert home in ([("B",)], [])  # moved to B (released when the Fleet stopped)
