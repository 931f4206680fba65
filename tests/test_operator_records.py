"""The operator's records: reservations listed from the store (hub up or down), cancelled through the
hub, sessions exported for billing, and session history in the HTTP API."""

import csv
import datetime
import io
import json
import time

from hubproc import evhub
from test_http_api import TOKEN, HttpHub, boot_station
from hub.store.store import Store
from transport import kinds as K


def _local(epoch):
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


def test_sessions_export_gives_energy_duration_and_who_within_the_period_as_csv_and_json(tmp_path):
    db = str(tmp_path / "hub.db")
    store = Store(db)
    store.add_station("CP-1", -12.2, -38.9, 2, 22)
    base = int(time.time()) - 3 * 86400
    store.record_session_end("S-old", "CP-1", 1, "V-1", None, 1000, base - 86400, base - 86400 + 600, "Complete")
    store.record_session_end("S-a", "CP-1", 1, "V-1", 7, 12345, base, base + 1800, "Complete")
    store.record_session_end("S-b", "CP-1", 2, None, None, 500, base + 3600, base + 3900, "Local")
    store.record_session_start("S-open", "CP-1", 1, "V-2", None, 0, base + 7200)  # not ended: not billed yet
    store.close()
    since, until = _local(base - 60), _local(base + 86400)
    res = evhub("sessions", "export", "--since", since, "--until", until, "--db", db)
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["session_id"] for r in rows] == ["S-a", "S-b"]
    a = rows[0]
    assert (a["station_id"], a["connector"], a["vehicle_id"], a["reservation_id"]) == ("CP-1", "1", "V-1", "7")
    assert (a["energy_wh"], a["energy_kwh"], a["duration_s"], a["reason"]) == ("12345", "12.345", "1800", "Complete")
    assert int(a["started_utc"]) == base and datetime.datetime.fromisoformat(a["started"]).timestamp() == base
    assert "2 sessions, 12.845 kWh" in res.stderr
    js = json.loads(evhub("sessions", "export", "--format", "json", "--vehicle", "V-1", "--db", db).stdout)
    assert [s["session_id"] for s in js["sessions"]] == ["S-old", "S-a"] and js["energy_wh"] == 13345
    bad = evhub("sessions", "export", "--since", "yesterday", "--db", db, check=False)
    assert bad.returncode == 2 and "not understood" in bad.stderr
    missing = evhub("sessions", "export", "--db", str(tmp_path / "none.db"), check=False)
    assert missing.returncode == 2 and "no store" in missing.stderr


def test_reservations_are_listed_from_the_store_while_the_hub_is_down_and_cancelled_through_it(tmp_path):
    hub = HttpHub(tmp_path).start()
    try:
        key = hub.add_station("CP-1", connectors=1)
        with boot_station(hub, "CP-1", key) as st:
            start = int(time.time()) + 3600
            made = []
            for vid, offset in (("V-1", 0), ("V-2", 3600)):
                status, _h, body = hub.request(
                    "POST",
                    "/api/reservations",
                    token=TOKEN,
                    body={"station_id": "CP-1", "vehicle_id": vid, "start": start + offset, "duration_min": 30},
                )
                assert status == 201, body
                made.append(body["reservation"]["reservation_id"])
            env = {"EVHUB_HTTP": "127.0.0.1:%d" % hub.http_port, "EVHUB_HTTP_TOKEN": TOKEN}
            res = evhub("reservations", "cancel", "#%d" % made[0], env=env)
            assert "cancelled #%d" % made[0] in res.stdout
            assert st.wait_event((K.CANCEL_RESERVATION,), timeout=5).fields[0] == made[0]  # the station is told
            again = evhub("reservations", "cancel", str(made[0]), env=env, check=False)
            assert again.returncode == 3 and "already ended" in again.stderr
            unknown = evhub("reservations", "cancel", "999", env=env, check=False)
            assert unknown.returncode == 4
            no_token = evhub(
                "reservations",
                "cancel",
                "1",
                env={"EVHUB_HTTP": env["EVHUB_HTTP"], "EVHUB_HTTP_TOKEN": ""},
                check=False,
            )
            assert no_token.returncode == 2 and "token" in no_token.stderr
    finally:
        hub.stop()
    # The hub is down: the list still reads the store.
    listing = evhub("reservations", "list", "--db", hub.db).stdout
    assert "#%d" % made[0] in listing and "cancelled" in listing and "#%d" % made[1] in listing
    confirmed = json.loads(evhub("reservations", "list", "--state", "confirmed", "--json", "--db", hub.db).stdout)
    assert [r["id"] for r in confirmed["reservations"]] == [made[1]]
    by_vehicle = evhub("reservations", "list", "--vehicle", "V-1", "--db", hub.db).stdout
    assert "V-2" not in by_vehicle and "V-1" in by_vehicle
    unreachable = evhub(
        "reservations", "cancel", "1", env={"EVHUB_HTTP": "127.0.0.1:9", "EVHUB_HTTP_TOKEN": TOKEN}, check=False
    )
    assert unreachable.returncode == 6 and "unreachable" in unreachable.stderr


def test_the_api_pages_through_ended_sessions_with_filters(tmp_path):
    with HttpHub(tmp_path) as hub:
        key = hub.add_station("CP-1", connectors=2)
        with boot_station(hub, "CP-1", key, connectors=2) as st:
            now = int(time.time())
            for i in range(5):
                st.request(
                    K.SESSION_END, "S-%d" % i, 1 + i % 2, "V-9", None, 100 * (i + 1), now + i, now + 60 + i, "Local"
                )
            page1 = hub.wait_for("/api/sessions?state=ended&limit=2", lambda b: len(b["sessions"]) == 2)
            assert [s["session_id"] for s in page1["sessions"]] == ["S-0", "S-1"] and page1["next_offset"] == 2
            page3 = hub.get("/api/sessions?state=ended&limit=2&offset=4")
            assert [s["session_id"] for s in page3["sessions"]] == ["S-4"] and page3["next_offset"] is None
            late = hub.get("/api/sessions?state=ended&since=%d" % (now + 63))
            assert [s["session_id"] for s in late["sessions"]] == ["S-3", "S-4"]
            assert hub.get("/api/sessions")["sessions"] == []  # the default is still what runs now
            status, _h, err = hub.request("GET", "/api/sessions?state=old")
            assert status == 400 and "live or ended" in err["error"]
