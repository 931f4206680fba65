"""`evhub stations update` and station names (cities) end to end: CLI, store, a real hub's API."""

import contextlib

from hubproc import evhub
from test_http_api import HttpHub
from tools.client.hubclient import HubClient
from transport import kinds as K


def test_update_fixes_capacity_and_name_in_place_keeping_the_key_and_the_hub_uses_it_at_the_next_boot(tmp_path):
    with HttpHub(tmp_path) as hub:
        key = hub.add_station("CP-1", connectors=2, max_kw=7.4)
        res = evhub(
            "stations",
            "update",
            "CP-1",
            "--connectors",
            "1",
            "--max-kw",
            "22",
            "--name",
            "Feira de Santana",
            "--db",
            hub.db,
            cwd=hub.tmp,
            env=hub.env,
        )
        assert "1 connectors at 22.0 kW" in res.stdout and "Feira de Santana" in res.stdout
        c = HubClient(hub.url, "station", "CP-1", key).connect()  # the old key still works
        with contextlib.closing(c):
            c.request(K.BOOT, -12.2664, -38.9663, 1, 22.0, "test-fw")
            cp1 = hub.wait_for("/api/stations", lambda b: b["stations"][0]["online"])["stations"][0]
            assert (cp1["connectors"], cp1["max_kw"], cp1["mismatch"], cp1["name"]) == (
                1,
                22.0,
                None,
                "Feira de Santana",
            )
        assert "capacity mismatch" not in hub.log()


def test_update_refuses_bad_values_and_unknown_stations_with_one_line(tmp_path):
    db = tmp_path / "s.db"
    evhub("stations", "add", "--id", "CP-1", "--lat", "1", "--lon", "2", "--db", db, cwd=tmp_path)
    bad = evhub("stations", "update", "CP-1", "--connectors", "0", "--db", db, cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "connectors must be 1..8" in bad.stderr and "Traceback" not in bad.stderr
    none = evhub("stations", "update", "CP-1", "--db", db, cwd=tmp_path, check=False)
    assert none.returncode == 2 and "nothing to change" in none.stderr
    missing = evhub("stations", "update", "CP-9", "--lat", "3", "--db", db, cwd=tmp_path, check=False)
    assert missing.returncode == 4 and "not provisioned" in missing.stderr
    ctrl = evhub("stations", "update", "CP-1", "--name", "a\x1b[2Jb", "--db", db, cwd=tmp_path, check=False)
    assert ctrl.returncode == 2 and "printable" in ctrl.stderr


def test_import_takes_a_city_column_as_the_station_name(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text(
        "id,lat,lon,connectors,max_kw,city\nCP-1,-12.2,-38.9,2,22,Feira de Santana\nCP-2,-12.3,-38.8,1,7.4,\n"
    )
    db = str(tmp_path / "s.db")
    evhub("stations", "import", csv, "--db", db, cwd=tmp_path)
    from hub.store.store import Store

    store = Store(db)
    try:
        assert [(r["id"], r["name"]) for r in store.all_stations()] == [("CP-1", "Feira de Santana"), ("CP-2", None)]
    finally:
        store.close()
